package network

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
	armnetwork "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/operation"
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

func newClients(t *testing.T) (*armnetwork.ClientFactory, *network.Service, *network.Memory) {
	t.Helper()
	st := memory.New()
	clk := clock.Real{}
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &resources.Service{Store: st, Clock: clk, Operations: ops}
	rt := &network.Memory{Host: []netip.Prefix{netip.MustParsePrefix("10.213.0.0/16")}}
	svc := &network.Service{Store: st, Clock: clk, Resources: res, Runtime: rt}
	ctx := context.Background()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	res.EnsureSubscription(ctx, resources.Subscription{ID: sub, TenantID: tenant})
	res.CreateOrUpdate(ctx, resources.ResourceGroup{Subscription: sub, Name: "rg", Location: "westeurope"})
	s := &arm.Server{Auth: anyToken{}, Resources: res, Operations: ops, Clock: clk, RetryAfter: 10 * time.Millisecond}
	s.HandleCore()
	(&API{ARM: s, Service: svc}).Register()
	ts := httptest.NewTLSServer(s)
	t.Cleanup(ts.Close)
	cfg := cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
		cloud.ResourceManager: {Audience: "https://management.core.windows.net/", Endpoint: ts.URL}}}
	f, err := armnetwork.NewClientFactory(sub, staticCred{}, &azarm.ClientOptions{ClientOptions: policy.ClientOptions{Cloud: cfg, Transport: ts.Client()}})
	if err != nil {
		t.Fatal(err)
	}
	return f, svc, rt
}

func code(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

var poll = &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond}

// TestWithSDK creates a virtual network with a delegated subnet, a second
// subnet as a child resource and a network profile, through armnetwork.
func TestWithSDK(t *testing.T) {
	f, svc, _ := newClients(t)
	ctx := context.Background()
	vnets, subnets, profiles := f.NewVirtualNetworksClient(), f.NewSubnetsClient(), f.NewProfilesClient()

	p, err := vnets.BeginCreateOrUpdate(ctx, "rg", "vnet1", armnetwork.VirtualNetwork{
		Location: to.Ptr("westeurope"), Tags: map[string]*string{"env": to.Ptr("dev")},
		Properties: &armnetwork.VirtualNetworkPropertiesFormat{
			AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: []*string{to.Ptr("10.0.0.0/16")}},
			Subnets: []*armnetwork.Subnet{{Name: to.Ptr("aci"), Properties: &armnetwork.SubnetPropertiesFormat{
				AddressPrefix: to.Ptr("10.0.1.0/24"),
				Delegations: []*armnetwork.Delegation{{Name: to.Ptr("aci"), Properties: &armnetwork.ServiceDelegationPropertiesFormat{
					ServiceName: to.Ptr("Microsoft.ContainerInstance/containerGroups")}}},
			}}},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	if *v.Properties.ProvisioningState != armnetwork.ProvisioningStateSucceeded || len(v.Properties.Subnets) != 1 ||
		*v.Properties.Subnets[0].Properties.Delegations[0].Properties.ServiceName != "Microsoft.ContainerInstance/containerGroups" ||
		*v.Tags["env"] != "dev" || !strings.HasSuffix(*v.ID, "/virtualNetworks/vnet1") {
		t.Fatalf("created %+v", v)
	}

	sp, err := subnets.BeginCreateOrUpdate(ctx, "rg", "vnet1", "second", armnetwork.Subnet{Properties: &armnetwork.SubnetPropertiesFormat{
		AddressPrefixes: []*string{to.Ptr("10.0.2.0/24")}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := sp.PollUntilDone(ctx, poll)
	if err != nil || *s2.Properties.AddressPrefixes[0] != "10.0.2.0/24" {
		t.Fatalf("subnet: %v %+v", err, s2)
	}
	if _, err := subnets.BeginCreateOrUpdate(ctx, "rg", "vnet1", "third", armnetwork.Subnet{Properties: &armnetwork.SubnetPropertiesFormat{
		AddressPrefix: to.Ptr("10.1.2.0/24")}}, nil); code(err) != "NetcfgSubnetRangeOutsideVnet" {
		t.Fatalf("subnet outside: %v", err)
	}
	n := 0
	for pager := subnets.NewListPager("rg", "vnet1", nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	if n != 2 {
		t.Fatalf("%d subnets", n)
	}

	subnetID := *v.Properties.Subnets[0].ID
	prof, err := profiles.CreateOrUpdate(ctx, "rg", "aci-profile", armnetwork.Profile{Location: to.Ptr("westeurope"),
		Properties: &armnetwork.ProfilePropertiesFormat{ContainerNetworkInterfaceConfigurations: []*armnetwork.ContainerNetworkInterfaceConfiguration{{
			Name: to.Ptr("eth0"), Properties: &armnetwork.ContainerNetworkInterfaceConfigurationPropertiesFormat{
				IPConfigurations: []*armnetwork.IPConfigurationProfile{{Name: to.Ptr("ipconfig"),
					Properties: &armnetwork.IPConfigurationProfilePropertiesFormat{Subnet: &armnetwork.Subnet{ID: to.Ptr(subnetID)}}}}}}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := *prof.Properties.ContainerNetworkInterfaceConfigurations[0].Properties.IPConfigurations[0].Properties.Subnet.ID; got != subnetID {
		t.Fatalf("profile subnet %s", got)
	}

	// A group in the subnet: the link shows and the subnet stays.
	group := "/subscriptions/s-1/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/g1"
	if err := svc.Use(ctx, *prof.ID, group); err != nil {
		t.Fatal(err)
	}
	got, err := subnets.Get(ctx, "rg", "vnet1", "aci", nil)
	if err != nil || len(got.Properties.ServiceAssociationLinks) != 1 || *got.Properties.ServiceAssociationLinks[0].Name != "acisal" ||
		*got.Properties.ServiceAssociationLinks[0].Properties.LinkedResourceType != "Microsoft.ContainerInstance/containerGroups" {
		t.Fatalf("subnet in use: %v %+v", err, got.Properties)
	}
	if _, err := subnets.BeginDelete(ctx, "rg", "vnet1", "aci", nil); code(err) != "InUseSubnetCannotBeDeleted" {
		t.Fatalf("delete a subnet in use: %v", err)
	}
	if _, err := vnets.BeginDelete(ctx, "rg", "vnet1", nil); code(err) != "InUseSubnetCannotBeDeleted" {
		t.Fatalf("delete a vnet in use: %v", err)
	}
	if err := svc.Release(ctx, group); err != nil {
		t.Fatal(err)
	}

	dp, err := profiles.BeginDelete(ctx, "rg", "aci-profile", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	sd, err := subnets.BeginDelete(ctx, "rg", "vnet1", "second", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sd.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	vd, err := vnets.BeginDelete(ctx, "rg", "vnet1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vd.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	if _, err := vnets.Get(ctx, "rg", "vnet1", nil); code(err) != "ResourceNotFound" {
		t.Fatalf("get after delete: %v", err)
	}
	n = 0
	for pager := vnets.NewListAllPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	if n != 0 {
		t.Fatalf("%d vnets left", n)
	}
}
