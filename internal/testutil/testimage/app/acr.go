package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	acr "github.com/Azure/azure-sdk-for-go/sdk/containers/azcontainerregistry"
)

// acrRepos is the mode "acr-repos ENDPOINT": code as a user would write it
// inside a container group with a managed identity — azidentity's
// ManagedIdentityCredential (the instance metadata endpoint, $AZURE_CLIENT_ID
// selecting a user-assigned identity when set) and the registry client —
// listing the registry's repositories, one per line after "repositories:".
// $BERTH_CA_PEM is berth's CA (the image carries no CA bundle).
func acrRepos(endpoint string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pool := x509.NewCertPool()
	if pem := os.Getenv("BERTH_CA_PEM"); pem == "" || !pool.AppendCertsFromPEM([]byte(pem)) {
		fmt.Fprintln(os.Stderr, "acr-repos: $BERTH_CA_PEM holds no certificate")
		return 2
	}
	transport := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	opts := azcore.ClientOptions{Transport: transport,
		Cloud: cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			acr.ServiceName: {Audience: "https://containerregistry.azure.net"}}}}
	var id azidentity.ManagedIDKind
	if c := os.Getenv("AZURE_CLIENT_ID"); c != "" {
		id = azidentity.ClientID(c)
	}
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: id})
	if err != nil {
		fmt.Fprintln(os.Stderr, "acr-repos:", err)
		return 1
	}
	start := time.Now()
	if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}}); err != nil {
		fmt.Fprintln(os.Stderr, "acr-repos: token from the metadata endpoint:", err)
		return 1
	}
	fmt.Printf("token in %v\n", time.Since(start).Round(time.Millisecond))
	client, err := acr.NewClient(endpoint, cred, &acr.ClientOptions{ClientOptions: opts})
	if err != nil {
		fmt.Fprintln(os.Stderr, "acr-repos:", err)
		return 1
	}
	var names []string
	for pager := client.NewListRepositoriesPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "acr-repos: listing repositories:", err)
			return 1
		}
		for _, n := range page.Repositories.Names {
			names = append(names, *n)
		}
	}
	fmt.Println("repositories: " + strings.Join(names, " "))
	return 0
}
