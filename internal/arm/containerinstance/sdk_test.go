package containerinstance

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	sdk "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/operation"
	rsrc "github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/runtime/fake"
	"github.com/berth-dev/berth/internal/store/memory"
)

// The official SDK (armcontainerinstance v2.4.0, api-version 2023-05-01)
// against the ARM handlers over the fake runtime: every operation's wire
// contract (status codes, pollers, pagers), fast and without containerd.
// test/e2e drives the same SDK against the real berth binary.

const (
	testTenant = "t-1"
	testSub    = "00000000-0000-0000-0000-000000000001"
)

type staticAuth struct{}

func (staticAuth) Authenticate(r *http.Request) (arm.Principal, error) {
	if r.Header.Get("Authorization") != "Bearer good" {
		return arm.Principal{}, apierr.New(apierr.Unauthenticated, "InvalidAuthenticationToken", "The access token is invalid.")
	}
	return arm.Principal{TenantID: testTenant}, nil
}

type staticCred struct{}

func (staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "good", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

type sdkEnv struct {
	rt      *fake.Runtime
	svc     *aci.Service
	groups  *sdk.ContainerGroupsClient
	ctrs    *sdk.ContainersClient
	loc     *sdk.LocationClient
	ops     *sdk.OperationsClient
	sal     *sdk.SubnetServiceAssociationLinkClient
	baseURL string
	client  *http.Client
}

func newSDKEnv(t *testing.T, pageSize int) *sdkEnv {
	t.Helper()
	ctx := context.Background()
	st := memory.New()
	clk := clock.Real{}
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &rsrc.Service{Store: st, Clock: clk, Operations: ops}
	if err := res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := res.EnsureSubscription(ctx, rsrc.Subscription{ID: testSub, TenantID: testTenant, DisplayName: "x", State: "Enabled"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := res.CreateOrUpdate(ctx, rsrc.ResourceGroup{Subscription: testSub, Name: "rg", Location: "westus"}); err != nil {
		t.Fatal(err)
	}
	e := &sdkEnv{rt: fake.New(fake.Options{})}
	e.svc = &aci.Service{Store: st, Runtime: e.rt, Resources: res, Operations: ops, Clock: clk}
	srv := &arm.Server{Auth: staticAuth{}, Resources: res, Operations: ops, Clock: clk, RetryAfter: 5 * time.Millisecond}
	srv.HandleCore()
	(&API{ARM: srv, Service: e.svc, PageSize: pageSize}).Register()
	if err := e.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(srv)
	t.Cleanup(func() { ts.Close(); e.svc.Close(); res.Close() })
	e.baseURL, e.client = ts.URL, ts.Client()
	cfg := cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
		cloud.ResourceManager: {Audience: "https://management.core.windows.net/", Endpoint: ts.URL},
	}}
	opts := &azarm.ClientOptions{ClientOptions: policy.ClientOptions{Cloud: cfg, Transport: ts.Client()}, DisableRPRegistration: true}
	f, err := sdk.NewClientFactory(testSub, staticCred{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.groups, e.ctrs, e.loc, e.ops, e.sal = f.NewContainerGroupsClient(), f.NewContainersClient(), f.NewLocationClient(),
		f.NewOperationsClient(), f.NewSubnetServiceAssociationLinkClient()
	return e
}

func sdkGroup(cmd ...string) sdk.ContainerGroup {
	c := &sdk.Container{Name: to.Ptr("web"), Properties: &sdk.ContainerProperties{
		Image:     to.Ptr("reg/app:v1"),
		Resources: &sdk.ResourceRequirements{Requests: &sdk.ResourceRequests{CPU: to.Ptr(1.0), MemoryInGB: to.Ptr(1.0)}},
		Ports:     []*sdk.ContainerPort{{Port: to.Ptr[int32](80)}},
	}}
	if len(cmd) > 0 {
		c.Properties.Command = to.SliceOfPtrs(cmd...)
	}
	return sdk.ContainerGroup{Location: to.Ptr("westus"), Tags: map[string]*string{"team": to.Ptr("a")}, Properties: &sdk.ContainerGroupPropertiesProperties{
		OSType: to.Ptr(sdk.OperatingSystemTypesLinux), Containers: []*sdk.Container{c},
		IPAddress: &sdk.IPAddress{Type: to.Ptr(sdk.ContainerGroupIPAddressTypePublic), Ports: []*sdk.Port{{Port: to.Ptr[int32](80)}}},
	}}
}

func (e *sdkEnv) create(t *testing.T, name string, g sdk.ContainerGroup) sdk.ContainerGroup {
	t.Helper()
	p, err := e.groups.BeginCreateOrUpdate(context.Background(), "rg", name, g, nil)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	res, err := p.PollUntilDone(context.Background(), &azruntimePollOpts)
	if err != nil {
		t.Fatalf("create %s: poll: %v", name, err)
	}
	return res.ContainerGroup
}

func (e *sdkEnv) state(t *testing.T, name string) string {
	t.Helper()
	r, err := e.groups.Get(context.Background(), "rg", name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return *r.Properties.InstanceView.State
}

func (e *sdkEnv) waitState(t *testing.T, name, want string) sdk.ContainerGroup {
	t.Helper()
	for i := 0; i < 400; i++ {
		r, err := e.groups.Get(context.Background(), "rg", name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *r.Properties.InstanceView.State == want {
			return r.ContainerGroup
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: state %s, want %s", name, e.state(t, name), want)
	return sdk.ContainerGroup{}
}

func TestSDKLifecycleActions(t *testing.T) {
	e := newSDKEnv(t, 0)
	ctx := context.Background()
	e.create(t, "web", sdkGroup())
	running := e.waitState(t, "web", "Running")

	// PATCH without tags keeps them; with tags replaces them.
	if r, err := e.groups.Update(ctx, "rg", "web", sdk.Resource{}, nil); err != nil || r.Tags["team"] == nil || *r.Tags["team"] != "a" {
		t.Fatalf("patch without tags: %v %v", r.Tags, err)
	}
	if r, err := e.groups.Update(ctx, "rg", "web", sdk.Resource{Tags: map[string]*string{"team": to.Ptr("b")}}, nil); err != nil || *r.Tags["team"] != "b" {
		t.Fatalf("patch tags: %v %v", r.Tags, err)
	}

	if _, err := e.groups.Stop(ctx, "rg", "web", nil); err != nil {
		t.Fatalf("stop: %v", err)
	}
	stopped := e.waitState(t, "web", "Stopped")
	if stopped.Properties.IPAddress.IP != nil {
		t.Fatalf("stopped group keeps address %s", *stopped.Properties.IPAddress.IP)
	}
	sp, err := e.groups.BeginStart(ctx, "rg", "web", nil)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if _, err := sp.PollUntilDone(ctx, &azruntimePollOpts); err != nil {
		t.Fatalf("start: poll: %v", err)
	}
	started := e.waitState(t, "web", "Running")
	// Start of a running group: 204, nothing to poll.
	sp, err = e.groups.BeginStart(ctx, "rg", "web", nil)
	if err != nil {
		t.Fatalf("start again: %v", err)
	}
	if _, err := sp.PollUntilDone(ctx, &azruntimePollOpts); err != nil {
		t.Fatalf("start again: poll: %v", err)
	}

	rp, err := e.groups.BeginRestart(ctx, "rg", "web", nil)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if _, err := rp.PollUntilDone(ctx, &azruntimePollOpts); err != nil {
		t.Fatalf("restart: poll: %v", err)
	}
	restarted := e.waitState(t, "web", "Running")
	if *restarted.Properties.IPAddress.IP != *started.Properties.IPAddress.IP {
		t.Fatalf("restart moved the group: %s → %s", *started.Properties.IPAddress.IP, *restarted.Properties.IPAddress.IP)
	}
	_ = running

	out, err := e.groups.GetOutboundNetworkDependenciesEndpoints(ctx, "rg", "web", nil)
	if err != nil || out.StringArray == nil || len(out.StringArray) != 0 {
		t.Fatalf("outbound endpoints: %v %v", out.StringArray, err)
	}
	dp, err := e.groups.BeginDelete(ctx, "rg", "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx, &azruntimePollOpts); err != nil {
		t.Fatal(err)
	}
	if _, err := e.groups.Stop(ctx, "rg", "web", nil); respCode(err) != "ResourceNotFound" {
		t.Fatalf("stop of a deleted group: %v", err)
	}
}

func TestSDKListPaging(t *testing.T) {
	e := newSDKEnv(t, 2)
	for _, n := range []string{"a1", "a2", "a3", "a4", "a5"} {
		e.create(t, n, sdkGroup())
	}
	var names []string
	pager := e.groups.NewListByResourceGroupPager("rg", nil)
	pages := 0
	for pager.More() {
		p, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, g := range p.Value {
			names = append(names, *g.Name)
			if g.Properties.InstanceView != nil {
				t.Errorf("list carries instanceView")
			}
		}
	}
	if pages != 3 || !slices.Equal(names, []string{"a1", "a2", "a3", "a4", "a5"}) {
		t.Fatalf("%d pages: %v", pages, names)
	}
	names = nil
	for sp := e.groups.NewListPager(nil); sp.More(); {
		p, err := sp.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range p.Value {
			names = append(names, *g.Name)
		}
	}
	if len(names) != 5 {
		t.Fatalf("subscription list: %v", names)
	}
}

func TestSDKLocationAndProvider(t *testing.T) {
	e := newSDKEnv(t, 0)
	ctx := context.Background()
	e.create(t, "web", sdkGroup())
	up := e.loc.NewListUsagePager("westus", nil)
	u, err := up.NextPage(ctx)
	if err != nil || len(u.Value) < 1 || *u.Value[0].Name.Value != "ContainerGroups" || *u.Value[0].CurrentValue != 1 || *u.Value[0].Limit != 100 {
		t.Fatalf("usage: %+v %v", u.Value, err)
	}
	cp := e.loc.NewListCapabilitiesPager("westus", nil)
	c, err := cp.NextPage(ctx)
	if err != nil || len(c.Value) == 0 || *c.Value[0].Capabilities.MaxCPU <= 0 || *c.Value[0].Gpu != "None" {
		t.Fatalf("capabilities: %+v %v", c.Value, err)
	}
	ip := e.loc.NewListCachedImagesPager("westus", nil)
	if _, err := ip.NextPage(ctx); err != nil {
		t.Fatalf("cached images: %v", err)
	}
	op := e.ops.NewListPager(nil)
	o, err := op.NextPage(ctx)
	if err != nil || len(o.Value) == 0 || *o.Value[0].Name != "Microsoft.ContainerInstance/containerGroups/read" {
		t.Fatalf("operations: %+v %v", o.Value, err)
	}
	// No subnet: nothing to unlink (204), which the poller accepts.
	sp, err := e.sal.BeginDelete(ctx, "rg", "vnet", "subnet", nil)
	if err != nil {
		t.Fatalf("SAL delete: %v", err)
	}
	if _, err := sp.PollUntilDone(ctx, &azruntimePollOpts); err != nil {
		t.Fatalf("SAL delete: poll: %v", err)
	}
}

func TestSDKLogs(t *testing.T) {
	e := newSDKEnv(t, 0)
	g := sdkGroup("/app", "echo", "hello")
	g.Properties.RestartPolicy = to.Ptr(sdk.ContainerGroupRestartPolicyNever)
	e.create(t, "job", g)
	e.waitState(t, "job", "Succeeded")
	r, err := e.ctrs.ListLogs(context.Background(), "rg", "job", "web", &sdk.ContainersClientListLogsOptions{Tail: to.Ptr[int32](1)})
	if err != nil || r.Content == nil || *r.Content != "hello\n" {
		t.Fatalf("logs: %v %v", r.Content, err)
	}
	if _, err := e.ctrs.ListLogs(context.Background(), "rg", "job", "nope", nil); respCode(err) != "ContainerNotFound" {
		t.Fatalf("logs of an unknown container: %v", err)
	}
}

func respCode(err error) string {
	if re, ok := err.(*azcore.ResponseError); ok {
		return re.ErrorCode
	}
	if err == nil {
		return ""
	}
	return err.Error()
}
