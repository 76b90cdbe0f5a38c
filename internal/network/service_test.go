package network_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/network/networktest"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store/memory"
)

var _ aci.Networks = (*network.Service)(nil)

const sub = "s-1"

type env struct {
	svc *network.Service
	rt  *network.Memory
	res *resources.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := memory.New()
	clk := clock.Real{}
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &resources.Service{Store: st, Clock: clk, Operations: ops}
	rt := &network.Memory{Host: []netip.Prefix{netip.MustParsePrefix("10.213.0.0/16"), netip.MustParsePrefix("192.0.2.0/24")}}
	svc := &network.Service{Store: st, Clock: clk, Resources: res, Runtime: rt}
	ctx := context.Background()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	res.EnsureSubscription(ctx, resources.Subscription{ID: sub, TenantID: "t"})
	for _, rg := range []string{"rg", "other"} {
		if _, _, err := res.CreateOrUpdate(ctx, resources.ResourceGroup{Subscription: sub, Name: rg, Location: "westeurope"}); err != nil {
			t.Fatal(err)
		}
	}
	return &env{svc: svc, rt: rt, res: res}
}

func code(err error) string {
	if err == nil {
		return ""
	}
	return apierr.As(err).Code
}

func vnet(rg, name string, space string, subnets ...*network.Subnet) *network.VirtualNetwork {
	return &network.VirtualNetwork{Subscription: sub, ResourceGroup: rg, Name: name, Location: "westeurope",
		AddressPrefixes: []string{space}, Subnets: subnets}
}

func aciSubnet(name, prefix string) *network.Subnet {
	return &network.Subnet{Name: name, AddressPrefix: prefix,
		Delegations: []network.Delegation{{Name: "aci", ServiceName: network.ACIDelegation}}}
}

func subnetID(rg, v, s string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.Network/virtualNetworks/" + v + "/subnets/" + s
}

func TestVirtualNetworkRules(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v, created, err := e.svc.PutVirtualNetwork(ctx, vnet("rg", "vn1", "10.0.0.0/16", aciSubnet("a", "10.0.1.0/24"), aciSubnet("b", "10.0.2.0/24")))
	if err != nil || !created || len(v.Subnets) != 2 || v.ResourceGUID == "" {
		t.Fatalf("create: %v %v %+v", err, created, v)
	}
	_, created, err = e.svc.PutVirtualNetwork(ctx, vnet("rg", "VN1", "10.0.0.0/16", aciSubnet("a", "10.0.1.0/24"), aciSubnet("b", "10.0.2.0/24")))
	if err != nil || created {
		t.Fatalf("update: %v %v", err, created)
	}
	for _, c := range []struct {
		name string
		v    *network.VirtualNetwork
		code string
	}{
		{"bad name", vnet("rg", "-x", "10.1.0.0/16"), "InvalidResourceName"},
		{"bad prefix", vnet("rg", "x", "10.1.0.0/33"), "InvalidAddressPrefixFormat"},
		{"host bits", vnet("rg", "x", "10.1.0.1/16"), "InvalidCIDRNotation"},
		{"outside", vnet("rg", "x", "10.1.0.0/16", aciSubnet("a", "10.2.0.0/24")), "NetcfgSubnetRangeOutsideVnet"},
		{"overlap in vnet", vnet("rg", "x", "10.1.0.0/16", aciSubnet("a", "10.1.0.0/24"), aciSubnet("b", "10.1.0.0/25")), "NetcfgSubnetRangesOverlap"},
		{"overlap other vnet", vnet("other", "x", "10.0.0.0/16", aciSubnet("a", "10.0.1.0/25")), "NetcfgSubnetRangesOverlap"},
		{"host route", vnet("rg", "x", "10.213.0.0/16", aciSubnet("a", "10.213.5.0/24")), "SubnetRangeInUseOnHost"},
		{"host network", vnet("rg", "x", "192.0.0.0/8", aciSubnet("a", "192.0.2.0/28")), "SubnetRangeInUseOnHost"},
		{"too small", vnet("rg", "x", "10.1.0.0/16", aciSubnet("a", "10.1.0.0/30")), "NetcfgInvalidSubnet"},
		{"bad delegation", vnet("rg", "x", "10.1.0.0/16", &network.Subnet{Name: "a", AddressPrefix: "10.1.0.0/24", Delegations: []network.Delegation{{Name: "d", ServiceName: "nope"}}}), "InvalidServiceNameOnDelegation"},
		{"no group", vnet("nogroup", "x", "10.1.0.0/16"), "ResourceGroupNotFound"},
		{"location", &network.VirtualNetwork{Subscription: sub, ResourceGroup: "rg", Name: "vn1", Location: "eastus", AddressPrefixes: []string{"10.0.0.0/16"}}, "InvalidResourceLocation"},
	} {
		if _, _, err := e.svc.PutVirtualNetwork(ctx, c.v); code(err) != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	// A refused PUT changed nothing.
	got, err := e.svc.GetVirtualNetwork(ctx, sub, "rg", "vn1")
	if err != nil || len(got.Subnets) != 2 || got.Location != "westeurope" {
		t.Fatalf("after refused PUTs: %v %+v", err, got)
	}
	// Subnets as child resources.
	sn, created, err := e.svc.PutSubnet(ctx, sub, "rg", "vn1", aciSubnet("c", "10.0.3.0/24"))
	if err != nil || !created || sn.Name != "c" {
		t.Fatalf("put subnet: %v", err)
	}
	if _, _, err := e.svc.PutSubnet(ctx, sub, "rg", "vn1", aciSubnet("d", "10.0.3.128/25")); code(err) != "NetcfgSubnetRangesOverlap" {
		t.Errorf("overlapping subnet: %v", err)
	}
	if _, _, err := e.svc.PutSubnet(ctx, sub, "rg", "nope", aciSubnet("d", "10.0.4.0/24")); code(err) != "ResourceNotFound" {
		t.Errorf("subnet of a missing vnet: %v", err)
	}
	if _, _, err := e.svc.GetSubnet(ctx, sub, "rg", "vn1", "zz"); code(err) != "NotFound" {
		t.Errorf("missing subnet: %v", err)
	}
	if ok, err := e.svc.DeleteSubnet(ctx, sub, "rg", "vn1", "c"); err != nil || !ok {
		t.Errorf("delete subnet: %v %v", ok, err)
	}
	if ok, err := e.svc.DeleteSubnet(ctx, sub, "rg", "vn1", "c"); err != nil || ok {
		t.Errorf("delete subnet again: %v %v", ok, err)
	}
	list, err := e.svc.ListVirtualNetworks(ctx, sub, "")
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %d", err, len(list))
	}
}

func TestGroupsInSubnets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, _, err := e.svc.PutVirtualNetwork(ctx, vnet("rg", "vn1", "10.0.0.0/16", aciSubnet("a", "10.0.1.0/24"),
		&network.Subnet{Name: "plain", AddressPrefix: "10.0.2.0/24"})); err != nil {
		t.Fatal(err)
	}
	a := subnetID("rg", "vn1", "a")
	name, err := e.svc.Subnet(ctx, a)
	if err != nil || name != strings.ToLower(a) {
		t.Fatalf("Subnet: %q %v", name, err)
	}
	nets, _ := e.rt.Networks(ctx)
	if len(nets) != 1 || nets[0].Prefix.String() != "10.0.1.0/24" || nets[0].Domain != strings.ToLower(strings.TrimSuffix(a, "/subnets/a")) {
		t.Fatalf("runtime networks %+v", nets)
	}
	if _, err := e.svc.Subnet(ctx, subnetID("rg", "vn1", "plain")); code(err) != "SubnetMissingRequiredDelegation" {
		t.Errorf("undelegated: %v", err)
	}
	if _, err := e.svc.Subnet(ctx, subnetID("rg", "vn1", "nope")); code(err) != "InvalidResourceReference" {
		t.Errorf("dangling: %v", err)
	}
	if _, err := e.svc.Subnet(ctx, "not-an-id"); code(err) != "InvalidResourceId" {
		t.Errorf("malformed: %v", err)
	}

	// Network profiles (2021-03-01).
	prof := &network.Profile{Subscription: sub, ResourceGroup: "rg", Name: "p1", Location: "westeurope",
		Interfaces: []network.InterfaceConfig{{Name: "eth0", IPConfigs: []network.IPConfig{{Name: "ipc", SubnetID: a}}}}}
	if _, created, err := e.svc.PutProfile(ctx, prof); err != nil || !created {
		t.Fatalf("profile: %v", err)
	}
	bad := *prof
	bad.Name, bad.Interfaces = "p2", []network.InterfaceConfig{{Name: "eth0", IPConfigs: []network.IPConfig{{Name: "ipc", SubnetID: subnetID("rg", "vn1", "gone")}}}}
	if _, _, err := e.svc.PutProfile(ctx, &bad); code(err) != "InvalidResourceReference" {
		t.Errorf("profile with a dangling subnet: %v", err)
	}
	pid := prof.ID()
	if name, err := e.svc.NetworkProfile(ctx, pid); err != nil || name != strings.ToLower(a) {
		t.Fatalf("NetworkProfile: %q %v", name, err)
	}
	if _, err := e.svc.NetworkProfile(ctx, pid+"x"); code(err) != "InvalidResourceReference" {
		t.Errorf("dangling profile: %v", err)
	}

	// Links: a subnet in use cannot go or change.
	g1 := "/subscriptions/s-1/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/g1"
	g2 := "/subscriptions/s-1/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/g2"
	if err := e.svc.Use(ctx, a, g1); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Use(ctx, pid, g2); err != nil {
		t.Fatal(err)
	}
	_, sn, _ := e.svc.GetSubnet(ctx, sub, "rg", "vn1", "a")
	if len(sn.Links) != 2 {
		t.Fatalf("links %v", sn.Links)
	}
	if _, err := e.svc.DeleteSubnet(ctx, sub, "rg", "vn1", "a"); code(err) != "InUseSubnetCannotBeDeleted" {
		t.Errorf("delete subnet in use: %v", err)
	}
	if _, err := e.svc.DeleteVirtualNetwork(ctx, sub, "rg", "vn1"); code(err) != "InUseSubnetCannotBeDeleted" {
		t.Errorf("delete vnet in use: %v", err)
	}
	if _, _, err := e.svc.PutSubnet(ctx, sub, "rg", "vn1", aciSubnet("a", "10.0.1.0/25")); code(err) != "InUseSubnetCannotBeUpdated" {
		t.Errorf("change prefix in use: %v", err)
	}
	if _, _, err := e.svc.PutSubnet(ctx, sub, "rg", "vn1", &network.Subnet{Name: "a", AddressPrefix: "10.0.1.0/24"}); code(err) != "SubnetDelegationsCannotChangeWhenSubnetUsedByResource" {
		t.Errorf("drop delegation in use: %v", err)
	}
	if _, err := e.svc.DeleteProfile(ctx, sub, "rg", "p1"); code(err) != "InUseNetworkProfileCannotBeDeleted" {
		t.Errorf("delete profile in use: %v", err)
	}
	if _, err := e.svc.DeleteServiceAssociationLink(ctx, a); code(err) != "ServiceAssociationLinkInUse" {
		t.Errorf("SAL delete in use: %v", err)
	}
	// A resource-group delete fails while groups are there.
	op, err := e.res.BeginDelete(ctx, sub, "rg")
	if err != nil {
		t.Fatal(err)
	}
	waitOp(t, e, op.ID, "InUseNetworkProfileCannotBeDeleted")

	for _, g := range []string{g1, g2, g2} {
		if err := e.svc.Release(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	// The groups are gone; the subnet still holds the link until its delete,
	// which removes it once (200), then finds none (204).
	if _, sn, _ := e.svc.GetSubnet(ctx, sub, "rg", "vn1", "a"); len(sn.Links) != 0 || !sn.HoldsLink {
		t.Errorf("after the groups left: links %v, holds link %v", sn.Links, sn.HoldsLink)
	}
	if removed, err := e.svc.DeleteServiceAssociationLink(ctx, a); err != nil || !removed {
		t.Errorf("SAL delete: removed %v, %v", removed, err)
	}
	if _, sn, _ := e.svc.GetSubnet(ctx, sub, "rg", "vn1", "a"); sn.HoldsLink {
		t.Errorf("the subnet holds the link after its delete")
	}
	if removed, err := e.svc.DeleteServiceAssociationLink(ctx, a); err != nil || removed {
		t.Errorf("second SAL delete: removed %v, %v", removed, err)
	}
	if _, err := e.svc.DeleteServiceAssociationLink(ctx, subnetID("rg", "vn1", "nope")); code(err) != "NotFound" {
		t.Errorf("SAL delete of a missing subnet: %v", err)
	}
	// The profile still names the subnet.
	if _, err := e.svc.DeleteSubnet(ctx, sub, "rg", "vn1", "a"); code(err) != "InUseSubnetCannotBeDeleted" {
		t.Errorf("delete subnet a profile names: %v", err)
	}
	// Changing the prefix of an unused subnet removes its runtime network.
	if _, _, err := e.svc.PutSubnet(ctx, sub, "rg", "vn1", aciSubnet("a", "10.0.1.0/25")); err != nil {
		t.Fatal(err)
	}
	if nets, _ := e.rt.Networks(ctx); len(nets) != 0 {
		t.Errorf("runtime networks after a prefix change: %+v", nets)
	}
	if _, err := e.svc.Subnet(ctx, a); err != nil {
		t.Fatal(err)
	}
	// Resource-group delete removes profiles, networks and runtime networks.
	op, err = e.res.BeginDelete(ctx, sub, "rg")
	if err != nil {
		t.Fatal(err)
	}
	waitOp(t, e, op.ID, "")
	if nets, _ := e.rt.Networks(ctx); len(nets) != 0 {
		t.Errorf("runtime networks after the group delete: %+v", nets)
	}
	if list, _ := e.svc.ListVirtualNetworks(ctx, sub, ""); len(list) != 0 {
		t.Errorf("vnets left: %d", len(list))
	}
	if list, _ := e.svc.ListProfiles(ctx, sub, ""); len(list) != 0 {
		t.Errorf("profiles left: %d", len(list))
	}
}

// TestServiceAssociationLink: the subnet holds ACI's link from its first
// group until the link's delete or the subnet's; a subnet made again under
// the same name starts without one.
func TestServiceAssociationLink(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, _, err := e.svc.PutVirtualNetwork(ctx, vnet("rg", "vn1", "10.0.0.0/16", aciSubnet("a", "10.0.1.0/24"), aciSubnet("b", "10.0.2.0/24"))); err != nil {
		t.Fatal(err)
	}
	a, b := subnetID("rg", "vn1", "a"), subnetID("rg", "vn1", "b")
	if removed, err := e.svc.DeleteServiceAssociationLink(ctx, b); err != nil || removed {
		t.Errorf("link delete of a subnet that never had a group: removed %v, %v", removed, err)
	}
	g := "/subscriptions/s-1/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/g"
	if err := e.svc.Use(ctx, a, g); err != nil {
		t.Fatal(err)
	}
	// The group moves to b: a keeps its link, b gets one.
	if err := e.svc.Use(ctx, b, g); err != nil {
		t.Fatal(err)
	}
	v, _ := e.svc.GetVirtualNetwork(ctx, sub, "rg", "vn1")
	if !v.Subnet("a").HoldsLink || !v.Subnet("b").HoldsLink || len(v.Subnet("a").Links) != 0 {
		t.Fatalf("after the move: a %+v, b %+v", v.Subnet("a"), v.Subnet("b"))
	}
	if err := e.svc.Release(ctx, g); err != nil {
		t.Fatal(err)
	}
	// Deleting the subnet takes its link along; the same name again is
	// unlinked.
	if ok, err := e.svc.DeleteSubnet(ctx, sub, "rg", "vn1", "a"); err != nil || !ok {
		t.Fatalf("delete subnet a: %v %v", ok, err)
	}
	if _, _, err := e.svc.PutSubnet(ctx, sub, "rg", "vn1", aciSubnet("a", "10.0.1.0/24")); err != nil {
		t.Fatal(err)
	}
	if _, sn, _ := e.svc.GetSubnet(ctx, sub, "rg", "vn1", "a"); sn.HoldsLink {
		t.Errorf("a subnet made again holds the old one's link")
	}
	if removed, err := e.svc.DeleteServiceAssociationLink(ctx, a); err != nil || removed {
		t.Errorf("link delete of the new subnet: removed %v, %v", removed, err)
	}
	// So does deleting the virtual network.
	if _, err := e.svc.DeleteVirtualNetwork(ctx, sub, "rg", "vn1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.PutVirtualNetwork(ctx, vnet("rg", "vn1", "10.0.0.0/16", aciSubnet("b", "10.0.2.0/24"))); err != nil {
		t.Fatal(err)
	}
	if removed, err := e.svc.DeleteServiceAssociationLink(ctx, b); err != nil || removed {
		t.Errorf("link delete in a virtual network made again: removed %v, %v", removed, err)
	}
}

// TestStartReconciles: runtime networks without a subnet go at start.
func TestStartReconciles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.rt.EnsureNetwork(ctx, network.RuntimeNetwork{Name: "stale", Domain: "x", Prefix: netip.MustParsePrefix("10.9.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.PutVirtualNetwork(ctx, vnet("rg", "vn1", "10.0.0.0/16", aciSubnet("a", "10.0.1.0/24"))); err != nil {
		t.Fatal(err)
	}
	a := subnetID("rg", "vn1", "a")
	if err := e.svc.Use(ctx, a, "/subscriptions/s-1/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/g"); err != nil {
		t.Fatal(err)
	}
	svc2 := &network.Service{Store: e.svc.Store, Clock: clock.Real{}, Resources: &resources.Service{Store: e.svc.Store}, Runtime: e.rt}
	if err := svc2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	nets, _ := e.rt.Networks(ctx)
	if len(nets) != 1 || nets[0].Name != strings.ToLower(a) {
		t.Errorf("after start: %+v", nets)
	}
}

func waitOp(t *testing.T, e *env, id, wantCode string) {
	t.Helper()
	ops := &operation.Tracker{Store: e.svc.Store, Clock: clock.Real{}}
	for range 500 {
		op, err := ops.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if op.Done() {
			if op.ErrorCode != wantCode {
				t.Fatalf("operation ended %s %s: %s, want %q", op.Status, op.ErrorCode, op.ErrorMsg, wantCode)
			}
			return
		}
		sleep()
	}
	t.Fatal("operation did not finish")
}

func sleep() { time.Sleep(10 * time.Millisecond) }

func TestMemoryConformance(t *testing.T) {
	m := &network.Memory{Host: []netip.Prefix{netip.MustParsePrefix("10.213.0.0/16")}}
	networktest.Suite(t, networktest.Env{Runtime: m, Free: [3]netip.Prefix{
		netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("10.2.0.0/24"), netip.MustParsePrefix("10.3.0.0/24")}})
}
