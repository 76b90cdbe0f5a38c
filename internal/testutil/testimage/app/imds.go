package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

const imdsToken = "http://169.254.169.254/metadata/identity/oauth2/token"

// imds RESOURCE ARMURL N: see the package documentation.
func imds(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: imds RESOURCE ARMURL N")
		return 2
	}
	resource, armURL := args[0], args[1]
	n, _ := strconv.Atoi(args[2])
	client := &http.Client{Timeout: 5 * time.Second}
	u := imdsToken + "?api-version=2018-02-01&resource=" + url.QueryEscape(resource)
	get := func(meta bool) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if meta {
			req.Header.Set("Metadata", "true")
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	// The endpoint may need a moment after the group starts.
	var code int
	var body string
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, body, err = get(false); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		fmt.Printf("nometa error %v\n", err)
		return 1
	}
	fmt.Printf("nometa %d %s\n", code, strings.TrimSpace(body))
	code, body, err = get(true)
	if err != nil {
		fmt.Printf("raw error %v\n", err)
		return 1
	}
	if code != http.StatusOK {
		fmt.Printf("raw %d %s\n", code, strings.TrimSpace(body))
		return 0
	}
	fmt.Printf("raw %d\n", code)

	// The official client, unchanged.
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		fmt.Printf("credential error %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{strings.TrimRight(resource, "/") + "/.default"}})
	if err != nil {
		fmt.Printf("token error %v\n", err)
		return 1
	}
	fmt.Println("token ok")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, armURL, nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := insecure.Do(req)
	if err != nil {
		fmt.Printf("arm error %v\n", err)
		return 1
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("arm %d %s\n", resp.StatusCode, strings.TrimSpace(string(b)))

	// Latency of the metadata endpoint (cached tokens), one connection.
	var ds []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		code, _, err := get(true)
		if err != nil || code != http.StatusOK {
			fmt.Printf("loop error %d %v\n", code, err)
			return 1
		}
		ds = append(ds, time.Since(start))
	}
	if len(ds) > 0 {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		fmt.Printf("p50 %s p99 %s n %d\n", ds[len(ds)/2], ds[len(ds)*99/100], len(ds))
	}
	return 0
}
