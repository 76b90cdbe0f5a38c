// Command quickstart creates a resource group and a container group on berth
// with nothing but the official Azure SDK for Go, configured from the
// environment `berth env` prints:
//
//	eval "$(berth env)"
//	go run ./examples/quickstart -image "$BERTH_REGISTRY/app:v1"
//
// It prints the group's address once it is running.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
)

func main() {
	image := flag.String("image", "", "image to run (required), e.g. $BERTH_REGISTRY/app:v1")
	rg := flag.String("resource-group", "quickstart", "resource group")
	name := flag.String("name", "hello", "container group name")
	port := flag.Int("port", 8080, "port the container listens on")
	flag.Parse()
	if *image == "" {
		log.Fatal("-image is required")
	}

	// The cloud: berth's ARM endpoint and token service.
	cfg := cloud.Configuration{
		ActiveDirectoryAuthorityHost: os.Getenv("AZURE_AUTHORITY_HOST"),
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Audience: "https://management.core.windows.net/", Endpoint: os.Getenv("BERTH_ENDPOINT")},
		},
	}
	// Credentials from AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET.
	cred, err := azidentity.NewEnvironmentCredential(&azidentity.EnvironmentCredentialOptions{
		ClientOptions: azcore.ClientOptions{Cloud: cfg}, DisableInstanceDiscovery: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	opts := &arm.ClientOptions{ClientOptions: policy.ClientOptions{Cloud: cfg}}
	sub := os.Getenv("AZURE_SUBSCRIPTION_ID")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	groups, err := armresources.NewResourceGroupsClient(sub, cred, opts)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := groups.CreateOrUpdate(ctx, *rg, armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		log.Fatal(err)
	}

	cgs, err := armcontainerinstance.NewContainerGroupsClient(sub, cred, opts)
	if err != nil {
		log.Fatal(err)
	}
	registry := os.Getenv("BERTH_REGISTRY")
	poller, err := cgs.BeginCreateOrUpdate(ctx, *rg, *name, armcontainerinstance.ContainerGroup{
		Location: to.Ptr("westeurope"),
		Properties: &armcontainerinstance.ContainerGroupPropertiesProperties{
			OSType: to.Ptr(armcontainerinstance.OperatingSystemTypesLinux),
			Containers: []*armcontainerinstance.Container{{
				Name: to.Ptr("app"),
				Properties: &armcontainerinstance.ContainerProperties{
					Image: image,
					Ports: []*armcontainerinstance.ContainerPort{{Port: to.Ptr(int32(*port))}},
					EnvironmentVariables: []*armcontainerinstance.EnvironmentVariable{
						{Name: to.Ptr("GREETING"), Value: to.Ptr("hello")},
					},
					Resources: &armcontainerinstance.ResourceRequirements{
						Requests: &armcontainerinstance.ResourceRequests{CPU: to.Ptr(1.0), MemoryInGB: to.Ptr(1.0)},
					},
				},
			}},
			IPAddress: &armcontainerinstance.IPAddress{
				Type:  to.Ptr(armcontainerinstance.ContainerGroupIPAddressTypePublic),
				Ports: []*armcontainerinstance.Port{{Port: to.Ptr(int32(*port))}},
			},
			ImageRegistryCredentials: []*armcontainerinstance.ImageRegistryCredential{{
				Server: to.Ptr(registry), Username: to.Ptr(os.Getenv("AZURE_CLIENT_ID")), Password: to.Ptr(os.Getenv("AZURE_CLIENT_SECRET")),
			}},
		},
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	res, err := poller.PollUntilDone(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	got, err := cgs.Get(ctx, *rg, *name, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: provisioningState=%s state=%s ip=%s\n", *res.Name, *got.Properties.ProvisioningState,
		*got.Properties.InstanceView.State, *got.Properties.IPAddress.IP)
}
