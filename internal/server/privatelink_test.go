package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	acr "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry/v3"
	armnetwork "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/arm/containerregistry"
	wirenet "github.com/berth-dev/berth/internal/arm/network"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/registries"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store/memory"
)

const plSub = "be127000-0000-4000-8000-00000000aaaa"

type plToken struct{}

func (plToken) Authenticate(r *http.Request) (arm.Principal, error) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		return arm.Principal{}, apierr.New(apierr.Unauthenticated, "InvalidAuthenticationToken", "no token")
	}
	return arm.Principal{TenantID: "t"}, nil
}

type plCred struct{}

func (plCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "x", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// plHost serves nothing: the ARM side only needs login servers.
type plHost struct{}

func (plHost) Serve(context.Context, *registries.Registry) error { return nil }
func (plHost) Stop(context.Context, string, bool) error          { return nil }
func (plHost) Size(context.Context, string) (int64, error)       { return 0, nil }

// denyApproval withholds the approval right on registries whose name
// starts with "manual" (the rest is allowed).
type denyApproval struct{}

func (denyApproval) Allowed(_ context.Context, _ arm.Principal, action, scope string) bool {
	return !(strings.HasSuffix(action, "privateEndpointConnectionsApproval/action") && strings.Contains(scope, "/registries/manual"))
}
func (denyApproval) AllowedBelow(context.Context, arm.Principal, string, string) bool { return true }

func sdkCode(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// TestPrivateEndpointsWithSDK: network rules on registries and private
// endpoints to them, through armcontainerregistry and armnetwork against
// berth's ARM handlers, the registries and network services and the
// adapter that connects them.
func TestPrivateEndpointsWithSDK(t *testing.T) {
	st := memory.New()
	clk := clock.Real{}
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &resources.Service{Store: st, Clock: clk, Operations: ops}
	ctx := context.Background()
	regs := &registries.Service{Store: st, Clock: clk, Resources: res, Operations: ops, Host: plHost{}, LoginHost: "127.0.0.1", FirstPort: 7601}
	if err := regs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(regs.Close)
	nets := &network.Service{Store: st, Clock: clk, Resources: res, Links: linkTarget{regs},
		Runtime: &network.Memory{Host: []netip.Prefix{netip.MustParsePrefix("10.213.0.0/16")}}}
	if err := nets.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	res.EnsureSubscription(ctx, resources.Subscription{ID: plSub, TenantID: "t"})
	res.CreateOrUpdate(ctx, resources.ResourceGroup{Subscription: plSub, Name: "rg", Location: "westeurope"})
	s := &arm.Server{Auth: plToken{}, Authz: denyApproval{}, Resources: res, Operations: ops, Clock: clk, RetryAfter: 10 * time.Millisecond}
	s.HandleCore()
	(&containerregistry.API{ARM: s, Service: regs}).Register()
	(&wirenet.API{ARM: s, Service: nets}).Register()
	ts := httptest.NewTLSServer(s)
	t.Cleanup(ts.Close)
	opts := &azarm.ClientOptions{ClientOptions: policy.ClientOptions{Transport: ts.Client(), Cloud: cloud.Configuration{
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{cloud.ResourceManager: {Audience: "https://management.core.windows.net/", Endpoint: ts.URL}}}}}
	nf, err := armnetwork.NewClientFactory(plSub, plCred{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	af, err := acr.NewClientFactory(plSub, plCred{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	poll := &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond}
	rc, pec, pe := af.NewRegistriesClient(), af.NewPrivateEndpointConnectionsClient(), nf.NewPrivateEndpointsClient()

	// A virtual network with a subnet for the endpoint.
	vp, err := nf.NewVirtualNetworksClient().BeginCreateOrUpdate(ctx, "rg", "vnet1", armnetwork.VirtualNetwork{
		Location: to.Ptr("westeurope"), Properties: &armnetwork.VirtualNetworkPropertiesFormat{
			AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: []*string{to.Ptr("10.0.0.0/16")}},
			Subnets:      []*armnetwork.Subnet{{Name: to.Ptr("a"), Properties: &armnetwork.SubnetPropertiesFormat{AddressPrefix: to.Ptr("10.0.1.0/24")}}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	vnet, err := vp.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	subnetID := *vnet.Properties.Subnets[0].ID

	create := func(name string, sku acr.SKUName, p *acr.RegistryProperties) (acr.Registry, error) {
		poller, err := rc.BeginCreate(ctx, "rg", name, acr.Registry{Location: to.Ptr("westeurope"), SKU: &acr.SKU{Name: to.Ptr(sku)}, Properties: p}, nil)
		if err != nil {
			return acr.Registry{}, err
		}
		r, err := poller.PollUntilDone(ctx, poll)
		return r.Registry, err
	}
	// Premium-only features on Basic and Standard.
	if _, err := create("basicoff1", acr.SKUNameBasic, &acr.RegistryProperties{PublicNetworkAccess: to.Ptr(acr.PublicNetworkAccessDisabled)}); sdkCode(err) != "DisablingPublicNetworkAccessNotSupported" {
		t.Fatalf("Basic with public access disabled: %v", err)
	}
	if _, err := create("stddeny1", acr.SKUNameStandard, &acr.RegistryProperties{NetworkRuleSet: &acr.NetworkRuleSet{DefaultAction: to.Ptr(acr.DefaultActionDeny)}}); sdkCode(err) != "NetworkRuleSetNotSupported" {
		t.Fatalf("Standard with defaultAction Deny: %v", err)
	}
	std, err := create("standard1", acr.SKUNameStandard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if std.Properties.NetworkRuleSet != nil || *std.Properties.PublicNetworkAccess != acr.PublicNetworkAccessEnabled ||
		*std.Properties.NetworkRuleBypassOptions != acr.NetworkRuleBypassOptionsAzureServices {
		t.Fatalf("Standard registry's network properties: %+v", std.Properties)
	}

	// A Premium registry: public access off, an IP rule, trusted services.
	prem, err := create("premium1", acr.SKUNamePremium, &acr.RegistryProperties{
		PublicNetworkAccess:      to.Ptr(acr.PublicNetworkAccessDisabled),
		NetworkRuleBypassOptions: to.Ptr(acr.NetworkRuleBypassOptionsAzureServices),
		NetworkRuleSet: &acr.NetworkRuleSet{DefaultAction: to.Ptr(acr.DefaultActionDeny),
			IPRules: []*acr.IPRule{{Action: to.Ptr(acr.ActionAllow), IPAddressOrRange: to.Ptr("127.0.0.1")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := rc.Get(ctx, "rg", "premium1", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := got.Properties
	if *p.PublicNetworkAccess != acr.PublicNetworkAccessDisabled || *p.NetworkRuleSet.DefaultAction != acr.DefaultActionDeny ||
		len(p.NetworkRuleSet.IPRules) != 1 || *p.NetworkRuleSet.IPRules[0].IPAddressOrRange != "127.0.0.1" ||
		*p.NetworkRuleSet.IPRules[0].Action != acr.ActionAllow || len(p.PrivateEndpointConnections) != 0 {
		t.Fatalf("Premium registry: %+v %+v", p, p.NetworkRuleSet)
	}
	// Its private link resource.
	lr, err := rc.GetPrivateLinkResource(ctx, "rg", "premium1", "registry", nil)
	if err != nil || *lr.Properties.GroupID != "registry" || *lr.Properties.RequiredZoneNames[0] != "privatelink.azurecr.io" {
		t.Fatalf("private link resource: %+v %v", lr, err)
	}
	lp := rc.NewListPrivateLinkResourcesPager("rg", "premium1", nil)
	if page, err := lp.NextPage(ctx); err != nil || len(page.Value) != 1 || *page.Value[0].Name != "registry" {
		t.Fatalf("private link resources: %v", err)
	}

	// Private endpoints.
	endpoint := func(name, subnet, target string) (armnetwork.PrivateEndpoint, error) {
		poller, err := pe.BeginCreateOrUpdate(ctx, "rg", name, armnetwork.PrivateEndpoint{Location: to.Ptr("westeurope"),
			Properties: &armnetwork.PrivateEndpointProperties{Subnet: &armnetwork.Subnet{ID: to.Ptr(subnet)},
				PrivateLinkServiceConnections: []*armnetwork.PrivateLinkServiceConnection{{Name: to.Ptr(name + "-conn"),
					Properties: &armnetwork.PrivateLinkServiceConnectionProperties{PrivateLinkServiceID: to.Ptr(target), GroupIDs: []*string{to.Ptr("registry")}}}}}}, nil)
		if err != nil {
			return armnetwork.PrivateEndpoint{}, err
		}
		r, err := poller.PollUntilDone(ctx, poll)
		return r.PrivateEndpoint, err
	}
	if _, err := endpoint("pe0", subnetID, *std.ID); sdkCode(err) != "PrivateEndpointBadRequest" {
		t.Fatalf("endpoint to a Standard registry: %v", err)
	}
	if _, err := endpoint("pe0", strings.Replace(subnetID, "/subnets/a", "/subnets/nope", 1), *prem.ID); sdkCode(err) != "InvalidResourceReference" {
		t.Fatalf("endpoint on a missing subnet: %v", err)
	}
	if _, err := endpoint("pe0", subnetID, strings.Replace(*prem.ID, "premium1", "nosuchreg1", 1)); sdkCode(err) != "PrivateLinkServiceNotFound" {
		t.Fatalf("endpoint to a missing registry: %v", err)
	}
	if _, err := pe.Get(ctx, "rg", "pe0", nil); sdkCode(err) != "ResourceNotFound" {
		t.Fatalf("a refused endpoint was left behind: %v", err)
	}
	ep, err := endpoint("pe1", subnetID, *prem.ID)
	if err != nil {
		t.Fatal(err)
	}
	conn := ep.Properties.PrivateLinkServiceConnections
	if len(conn) != 1 || *conn[0].Properties.PrivateLinkServiceConnectionState.Status != "Approved" ||
		!strings.EqualFold(*ep.Properties.Subnet.ID, subnetID) || len(ep.Properties.NetworkInterfaces) != 1 ||
		*ep.Properties.ProvisioningState != armnetwork.ProvisioningStateSucceeded {
		t.Fatalf("endpoint: %+v", ep.Properties)
	}
	// The registry lists the connection, approved.
	got, err = rc.Get(ctx, "rg", "premium1", nil)
	if err != nil || len(got.Properties.PrivateEndpointConnections) != 1 {
		t.Fatalf("registry's connections: %v", err)
	}
	pc := got.Properties.PrivateEndpointConnections[0]
	if *pc.Properties.PrivateLinkServiceConnectionState.Status != acr.ConnectionStatusApproved || !strings.EqualFold(*pc.Properties.PrivateEndpoint.ID, *ep.ID) {
		t.Fatalf("connection: %+v", pc.Properties)
	}
	if one, err := pec.Get(ctx, "rg", "premium1", *pc.Name, nil); err != nil || *one.ID != *pc.ID {
		t.Fatalf("get connection: %v", err)
	}
	if page, err := pec.NewListPager("rg", "premium1", nil).NextPage(ctx); err != nil || len(page.Value) != 1 {
		t.Fatalf("list connections: %v", err)
	}
	if page, err := pe.NewListPager("rg", nil).NextPage(ctx); err != nil || len(page.Value) != 1 {
		t.Fatalf("list endpoints: %v", err)
	}
	if page, err := pe.NewListBySubscriptionPager(nil).NextPage(ctx); err != nil || len(page.Value) != 1 {
		t.Fatalf("list endpoints in the subscription: %v", err)
	}

	// Downgrading with network features set, or deleting the subnet, is refused.
	up, err := rc.BeginUpdate(ctx, "rg", "premium1", acr.RegistryUpdateParameters{SKU: &acr.SKU{Name: to.Ptr(acr.SKUNameStandard)}}, nil)
	if err == nil {
		_, err = up.PollUntilDone(ctx, poll)
	}
	if sdkCode(err) != "DisablingPublicNetworkAccessNotSupported" {
		t.Fatalf("downgrade: %v", err)
	}
	dp, err := nf.NewSubnetsClient().BeginDelete(ctx, "rg", "vnet1", "a", nil)
	if err == nil {
		_, err = dp.PollUntilDone(ctx, poll)
	}
	if sdkCode(err) != "InUseSubnetCannotBeDeleted" {
		t.Fatalf("delete the endpoint's subnet: %v", err)
	}

	// Rejected on the registry's side: the endpoint shows it.
	cp, err := pec.BeginCreateOrUpdate(ctx, "rg", "premium1", *pc.Name, acr.PrivateEndpointConnection{Properties: &acr.PrivateEndpointConnectionProperties{
		PrivateLinkServiceConnectionState: &acr.PrivateLinkServiceConnectionState{Status: to.Ptr(acr.ConnectionStatusRejected), Description: to.Ptr("not you")}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := cp.PollUntilDone(ctx, poll); err != nil || *c.Properties.PrivateLinkServiceConnectionState.Status != acr.ConnectionStatusRejected {
		t.Fatalf("reject: %v", err)
	}
	if e, err := pe.Get(ctx, "rg", "pe1", nil); err != nil || *e.Properties.PrivateLinkServiceConnections[0].Properties.PrivateLinkServiceConnectionState.Status != "Rejected" {
		t.Fatalf("endpoint after the rejection: %v", err)
	}
	// Deleted on the registry's side: the endpoint shows Disconnected.
	delc, err := pec.BeginDelete(ctx, "rg", "premium1", *pc.Name, nil)
	if err == nil {
		_, err = delc.PollUntilDone(ctx, poll)
	}
	if err != nil {
		t.Fatal(err)
	}
	if e, err := pe.Get(ctx, "rg", "pe1", nil); err != nil || *e.Properties.PrivateLinkServiceConnections[0].Properties.PrivateLinkServiceConnectionState.Status != "Disconnected" {
		t.Fatalf("endpoint after the connection's delete: %v", err)
	}
	// Deleting an endpoint removes its connection.
	if _, err := endpoint("pe2", subnetID, *prem.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := rc.Get(ctx, "rg", "premium1", nil); len(got.Properties.PrivateEndpointConnections) != 1 {
		t.Fatal("second endpoint's connection missing")
	}
	dep, err := pe.BeginDelete(ctx, "rg", "pe2", nil)
	if err == nil {
		_, err = dep.PollUntilDone(ctx, poll)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := rc.Get(ctx, "rg", "premium1", nil); len(got.Properties.PrivateEndpointConnections) != 0 {
		t.Fatalf("a deleted endpoint's connection stayed: %+v", got.Properties.PrivateEndpointConnections)
	}

	// Without the approval right the connection waits, Pending, and the
	// registry's owner approves it.
	if _, err := create("manualreg1", acr.SKUNamePremium, nil); err != nil {
		t.Fatal(err)
	}
	mp, err := endpoint("pe3", subnetID, strings.Replace(*prem.ID, "premium1", "manualreg1", 1))
	if err != nil || *mp.Properties.PrivateLinkServiceConnections[0].Properties.PrivateLinkServiceConnectionState.Status != "Pending" {
		t.Fatalf("endpoint without the approval right: %v", err)
	}
	mr, _ := rc.Get(ctx, "rg", "manualreg1", nil)
	name := *mr.Properties.PrivateEndpointConnections[0].Name
	ap, err := pec.BeginCreateOrUpdate(ctx, "rg", "manualreg1", name, acr.PrivateEndpointConnection{Properties: &acr.PrivateEndpointConnectionProperties{
		PrivateLinkServiceConnectionState: &acr.PrivateLinkServiceConnectionState{Status: to.Ptr(acr.ConnectionStatusApproved)}}}, nil)
	if err == nil {
		_, err = ap.PollUntilDone(ctx, poll)
	}
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := pe.Get(ctx, "rg", "pe3", nil); *e.Properties.PrivateLinkServiceConnections[0].Properties.PrivateLinkServiceConnectionState.Status != "Approved" {
		t.Fatal("approved connection not shown on the endpoint")
	}
}
