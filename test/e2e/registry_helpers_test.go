package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	acr "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry/v3"
)

var registryPoll = &runtime.PollUntilDoneOptions{Frequency: 200 * time.Millisecond}

// createRegistry creates registry name in rg through regs, as reg says,
// and returns it as created.
func createRegistry(ctx context.Context, t *testing.T, regs *acr.RegistriesClient, rg, name string, reg acr.Registry) acr.Registry {
	t.Helper()
	p, err := regs.BeginCreate(ctx, rg, name, reg, nil)
	if err != nil {
		t.Fatalf("registry %s: %v", name, err)
	}
	res, err := p.PollUntilDone(ctx, registryPoll)
	if err != nil {
		t.Fatalf("registry %s: %v", name, err)
	}
	return res.Registry
}

// importFromDefault imports repo:tag source from berth's default registry,
// signed in as the service principal, into registry name in rg as target.
func importFromDefault(ctx context.Context, t *testing.T, b *berth, regs *acr.RegistriesClient, rg, name, source, target string) {
	t.Helper()
	p, err := regs.BeginImportImage(ctx, rg, name, acr.ImportImageParameters{
		Source: &acr.ImportSource{RegistryURI: to.Ptr(b.env["BERTH_REGISTRY"]), SourceImage: to.Ptr(source),
			Credentials: &acr.ImportSourceCredentials{Username: to.Ptr(b.env["AZURE_CLIENT_ID"]), Password: to.Ptr(b.env["AZURE_CLIENT_SECRET"])}},
		TargetTags: []*string{to.Ptr(target)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, registryPoll); err != nil {
		t.Fatalf("import: %v", err)
	}
}
