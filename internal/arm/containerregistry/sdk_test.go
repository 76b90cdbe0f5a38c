package containerregistry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	acr "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry/v3"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/registries"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store/memory"
)

const (
	tenant = "t-1"
	sub    = "s-1"
)

type anyToken struct{}

func (anyToken) Authenticate(r *http.Request) (arm.Principal, error) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		return arm.Principal{}, apierr.New(apierr.Unauthenticated, "InvalidAuthenticationToken", "no token")
	}
	return arm.Principal{TenantID: tenant}, nil
}

type staticCred struct{}

func (staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "x", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

type host struct {
	mu     sync.Mutex
	served map[string]string
}

func (h *host) Serve(_ context.Context, r *registries.Registry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.served[strings.ToLower(r.Name)] = r.LoginServer
	return nil
}
func (h *host) Stop(context.Context, string, bool) error    { return nil }
func (h *host) Size(context.Context, string) (int64, error) { return 1234, nil }

type importer struct{ done chan registries.ImportRequest }

func (i importer) Import(_ context.Context, _ *registries.Registry, req registries.ImportRequest) error {
	i.done <- req
	return nil
}

func newClient(t *testing.T) (*acr.RegistriesClient, chan registries.ImportRequest) {
	t.Helper()
	opts, imports := newServer(t)
	c, err := acr.NewRegistriesClient(sub, staticCred{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, imports
}

// newServer serves the API on a TLS test server and returns SDK client
// options for it.
func newServer(t *testing.T) (*azarm.ClientOptions, chan registries.ImportRequest) {
	t.Helper()
	st := memory.New()
	clk := clock.Real{}
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &resources.Service{Store: st, Clock: clk, Operations: ops}
	ctx := context.Background()
	imports := make(chan registries.ImportRequest, 4)
	svc := &registries.Service{Store: st, Clock: clk, Resources: res, Operations: ops, Host: &host{served: map[string]string{}}, Importer: importer{imports},
		LoginHost: "127.0.0.1", FirstPort: 7501}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Close(); svc.Close() })
	res.EnsureSubscription(ctx, resources.Subscription{ID: sub, TenantID: tenant})
	res.CreateOrUpdate(ctx, resources.ResourceGroup{Subscription: sub, Name: "rg", Location: "westus"})
	s := &arm.Server{Auth: anyToken{}, Resources: res, Operations: ops, Clock: clk, RetryAfter: 10 * time.Millisecond}
	s.HandleCore()
	(&API{ARM: s, Service: svc}).Register()
	ts := httptest.NewTLSServer(s)
	t.Cleanup(ts.Close)
	cfg := cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
		cloud.ResourceManager: {Audience: "https://management.core.windows.net/", Endpoint: ts.URL}}}
	return &azarm.ClientOptions{ClientOptions: policy.ClientOptions{Cloud: cfg, Transport: ts.Client()}}, imports
}

func code(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// TestWithSDK drives every registry operation through armcontainerregistry.
func TestWithSDK(t *testing.T) {
	c, imports := newClient(t)
	ctx := context.Background()
	poll := &runtime.PollUntilDoneOptions{Frequency: time.Second}

	avail, err := c.CheckNameAvailability(ctx, acr.RegistryNameCheckRequest{Name: to.Ptr("myreg01"), Type: to.Ptr("Microsoft.ContainerRegistry/registries")}, nil)
	if err != nil || !*avail.NameAvailable {
		t.Fatalf("check name: %v %+v", err, avail)
	}
	p, err := c.BeginCreate(ctx, "rg", "myreg01", acr.Registry{Location: to.Ptr("westus"), SKU: &acr.SKU{Name: to.Ptr(acr.SKUNameStandard)},
		Properties: &acr.RegistryProperties{AdminUserEnabled: to.Ptr(true)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	created, err := p.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	if *created.Properties.LoginServer != "127.0.0.1:7501" || *created.Properties.ProvisioningState != acr.ProvisioningStateSucceeded || *created.SKU.Tier != acr.SKUTierStandard {
		t.Fatalf("created %+v", created.Properties)
	}
	avail, _ = c.CheckNameAvailability(ctx, acr.RegistryNameCheckRequest{Name: to.Ptr("MYREG01"), Type: to.Ptr("Microsoft.ContainerRegistry/registries")}, nil)
	if *avail.NameAvailable || *avail.Reason != "AlreadyExists" {
		t.Fatalf("check taken name: %+v", avail)
	}
	got, err := c.Get(ctx, "rg", "myreg01", nil)
	if err != nil || !*got.Properties.AdminUserEnabled {
		t.Fatalf("get: %v", err)
	}
	creds, err := c.ListCredentials(ctx, "rg", "myreg01", nil)
	if err != nil || *creds.Username != "myreg01" || len(creds.Passwords) != 2 {
		t.Fatalf("credentials: %v %+v", err, creds)
	}
	regen, err := c.RegenerateCredential(ctx, "rg", "myreg01", acr.RegenerateCredentialParameters{Name: to.Ptr(acr.PasswordNamePassword2)}, nil)
	if err != nil || *regen.Passwords[1].Value == *creds.Passwords[1].Value || *regen.Passwords[0].Value != *creds.Passwords[0].Value {
		t.Fatalf("regenerate: %v", err)
	}
	up, err := c.BeginUpdate(ctx, "rg", "myreg01", acr.RegistryUpdateParameters{Tags: map[string]*string{"env": to.Ptr("dev")},
		Properties: &acr.RegistryPropertiesUpdateParameters{AnonymousPullEnabled: to.Ptr(true), AdminUserEnabled: to.Ptr(false)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	updated, err := up.PollUntilDone(ctx, poll)
	if err != nil || *updated.Tags["env"] != "dev" || !*updated.Properties.AnonymousPullEnabled || *updated.Properties.AdminUserEnabled {
		t.Fatalf("update: %v", err)
	}
	if _, err := c.ListCredentials(ctx, "rg", "myreg01", nil); code(err) != "UnAuthorizedForCredentialOperations" {
		t.Fatalf("credentials with admin off: %v", err)
	}
	usages, err := c.ListUsages(ctx, "rg", "myreg01", nil)
	if err != nil || *usages.Value[0].Name != "Size" || *usages.Value[0].CurrentValue != 1234 {
		t.Fatalf("usages: %v", err)
	}
	n := 0
	for pager := c.NewListPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	for pager := c.NewListByResourceGroupPager("rg", nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	if n != 2 {
		t.Fatalf("lists returned %d registries, want 1 each", n)
	}

	ip, err := c.BeginImportImage(ctx, "rg", "myreg01", acr.ImportImageParameters{
		Source:     &acr.ImportSource{RegistryURI: to.Ptr("https://127.0.0.1:9999"), SourceImage: to.Ptr("library/app:v1"), Credentials: &acr.ImportSourceCredentials{Username: to.Ptr("u"), Password: to.Ptr("p")}},
		TargetTags: []*string{to.Ptr("app:v1")}, Mode: to.Ptr(acr.ImportModeForce)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ip.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("import: %v", err)
	}
	req := <-imports
	if req.SourceRegistry != "127.0.0.1:9999" || req.SourceImage != "library/app:v1" || !req.Force || req.Username != "u" || req.TargetTags[0] != "app:v1" {
		t.Fatalf("import request %+v", req)
	}

	dp, err := c.BeginDelete(ctx, "rg", "myreg01", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "rg", "myreg01", nil); code(err) != "ResourceNotFound" {
		t.Fatalf("get after delete: %v", err)
	}
	// Bad input.
	if _, err := c.BeginCreate(ctx, "rg", "no", acr.Registry{Location: to.Ptr("westus"), SKU: &acr.SKU{Name: to.Ptr(acr.SKUNameBasic)}}, nil); code(err) != "InvalidResourceName" {
		t.Fatalf("short name: %v", err)
	}
	if _, err := c.BeginCreate(ctx, "nope", "goodname", acr.Registry{Location: to.Ptr("westus"), SKU: &acr.SKU{Name: to.Ptr(acr.SKUNameBasic)}}, nil); code(err) != "ResourceGroupNotFound" {
		t.Fatalf("unknown group: %v", err)
	}
}
