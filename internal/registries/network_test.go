package registries

import (
	"context"
	"net/netip"
	"testing"

	"github.com/berth-dev/berth/internal/apierr"
)

const vnetA = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/a"

func TestAllows(t *testing.T) {
	host := func(ip string) Caller { return Caller{Kind: FromHost, Addr: netip.MustParseAddr(ip)} }
	group := func(vnet string) Caller { return Caller{Kind: FromGroup, Network: vnet} }
	loop := host("127.0.0.1")
	approved := []Connection{{Name: "pe.1", PrivateEndpointID: "pe", Network: "/SUBSCRIPTIONS/sub/resourcegroups/rg/providers/microsoft.network/virtualnetworks/a", Status: StatusApproved}}
	pending := []Connection{{Name: "pe.1", PrivateEndpointID: "pe", Network: vnetA, Status: StatusPending}}
	deny := func(rules ...string) *NetworkRuleSet {
		rs := &NetworkRuleSet{DefaultAction: ActionDeny}
		for _, v := range rules {
			rs.IPRules = append(rs.IPRules, IPRule{Action: ActionAllow, Value: v})
		}
		return rs
	}
	cases := []struct {
		name string
		r    Registry
		c    Caller
		want bool
	}{
		{"defaults: the host", Registry{}, loop, true},
		{"defaults: a group on the public network", Registry{}, group(""), true},
		{"defaults: a group in a vnet", Registry{}, group(vnetA), true},
		{"deny: the host", Registry{NetworkRuleSet: deny()}, loop, false},
		{"deny: host in an ip rule", Registry{NetworkRuleSet: deny("127.0.0.1")}, loop, true},
		{"deny: host in a cidr rule", Registry{NetworkRuleSet: deny("10.0.0.0/8", "127.0.0.0/30")}, host("127.0.0.2"), true},
		{"deny: host outside the rules", Registry{NetworkRuleSet: deny("127.0.0.0/31")}, host("127.0.0.2"), false},
		{"deny: a group without an endpoint", Registry{NetworkRuleSet: deny()}, group(vnetA), false},
		{"deny: a group whose address is in a rule", Registry{NetworkRuleSet: deny("10.1.0.0/24")}, Caller{Kind: FromGroup, Network: vnetA, Addr: netip.MustParseAddr("10.1.0.4")}, true},
		{"disabled: the host", Registry{PublicNetworkAccess: AccessDisabled}, loop, false},
		{"disabled: ip rules do not apply", Registry{PublicNetworkAccess: AccessDisabled, NetworkRuleSet: deny("127.0.0.1")}, loop, false},
		{"disabled: a group in the endpoint's vnet", Registry{PublicNetworkAccess: AccessDisabled, Connections: approved}, group(vnetA), true},
		{"disabled: a group in another vnet", Registry{PublicNetworkAccess: AccessDisabled, Connections: approved}, group(vnetA + "x"), false},
		{"disabled: a public group", Registry{PublicNetworkAccess: AccessDisabled, Connections: approved}, group(""), false},
		{"disabled: the host despite an endpoint", Registry{PublicNetworkAccess: AccessDisabled, Connections: approved}, loop, false},
		{"disabled: a pending connection lets nobody in", Registry{PublicNetworkAccess: AccessDisabled, Connections: pending}, group(vnetA), false},
		{"disabled: trusted services by default", Registry{PublicNetworkAccess: AccessDisabled}, Caller{Kind: FromTrustedService}, true},
		{"disabled: trusted services with bypass None", Registry{PublicNetworkAccess: AccessDisabled, NetworkRuleBypassOptions: BypassNone}, Caller{Kind: FromTrustedService}, false},
		{"deny: trusted services with bypass None", Registry{NetworkRuleSet: deny(), NetworkRuleBypassOptions: BypassNone}, Caller{Kind: FromTrustedService}, false},
		{"allow: trusted services with bypass None", Registry{NetworkRuleBypassOptions: BypassNone}, Caller{Kind: FromTrustedService}, true},
		{"disabled: the registry's own work", Registry{PublicNetworkAccess: AccessDisabled, NetworkRuleBypassOptions: BypassNone}, Caller{Kind: FromSelf}, true},
		{"deny: a caller without an address", Registry{NetworkRuleSet: deny("0.0.0.0/0")}, Caller{Kind: FromHost}, false},
	}
	for _, tc := range cases {
		if got := tc.r.Allows(tc.c); got != tc.want {
			t.Errorf("%s: Allows = %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := DeniedMessage("10.1.0.4"); got != "client with IP '10.1.0.4' is not allowed access. Refer https://aka.ms/acr/firewall to grant access." {
		t.Errorf("DeniedMessage = %q", got)
	}
}

func code(err error) string {
	if e := apierr.As(err); e != nil {
		return e.Code
	}
	return ""
}

func TestNetworkFeaturesNeedPremium(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, sku := range []string{"Basic", "Standard"} {
		r := reg("off" + sku)
		r.SKU, r.PublicNetworkAccess = sku, "disabled"
		if _, _, err := e.svc.CreateOrUpdate(ctx, r); code(err) != "DisablingPublicNetworkAccessNotSupported" {
			t.Fatalf("%s with public access disabled: %v", sku, err)
		}
		r = reg("deny" + sku)
		r.SKU, r.NetworkRuleSet = sku, &NetworkRuleSet{DefaultAction: "Deny"}
		if _, _, err := e.svc.CreateOrUpdate(ctx, r); code(err) != "NetworkRuleSetNotSupported" {
			t.Fatalf("%s with defaultAction Deny: %v", sku, err)
		}
		// An open rule set is what ACR answers for every registry: taken.
		r = reg("open" + sku)
		r.SKU, r.NetworkRuleSet = sku, &NetworkRuleSet{DefaultAction: "Allow"}
		if _, _, err := e.svc.CreateOrUpdate(ctx, r); err != nil {
			t.Fatalf("%s with an open rule set: %v", sku, err)
		}
	}
	if _, err := e.svc.Get(ctx, "sub", "rg", "offBasic"); code(err) != "ResourceNotFound" {
		t.Fatalf("a refused create left a registry behind: %v", err)
	}

	// Premium takes them all, normalised.
	r := reg("premium1")
	r.SKU, r.PublicNetworkAccess, r.NetworkRuleBypassOptions = "premium", "disabled", "none"
	r.NetworkRuleSet = &NetworkRuleSet{DefaultAction: "deny", IPRules: []IPRule{{Value: "127.0.0.1"}, {Action: "allow", Value: "10.0.0.0/8"}}}
	got, _, err := e.svc.CreateOrUpdate(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if got.PublicAccess() != "Disabled" || got.Bypass() != "None" || got.DefaultAction() != "Deny" ||
		len(got.NetworkRuleSet.IPRules) != 2 || got.NetworkRuleSet.IPRules[0].Action != "Allow" {
		t.Fatalf("stored %+v %+v", got, got.NetworkRuleSet)
	}
	bad := reg("premium2")
	bad.SKU, bad.NetworkRuleSet = "Premium", &NetworkRuleSet{DefaultAction: "Deny", IPRules: []IPRule{{Value: "not-an-ip"}}}
	if _, _, err := e.svc.CreateOrUpdate(ctx, bad); code(err) != "InvalidIpRule" {
		t.Fatalf("bad ip rule: %v", err)
	}
	bad.NetworkRuleSet = &NetworkRuleSet{DefaultAction: "Sometimes"}
	if _, _, err := e.svc.CreateOrUpdate(ctx, bad); code(err) != "InvalidParameter" {
		t.Fatalf("bad default action: %v", err)
	}

	// A downgrade with network features set is refused and changes nothing.
	std := "Standard"
	if _, err := e.svc.Patch(ctx, "sub", "rg", "premium1", Update{SKU: &std}); code(err) != "DisablingPublicNetworkAccessNotSupported" {
		t.Fatalf("downgrade with public access disabled: %v", err)
	}
	en := "Enabled"
	if _, err := e.svc.Patch(ctx, "sub", "rg", "premium1", Update{SKU: &std, PublicNetworkAccess: &en}); code(err) != "NetworkRuleSetNotSupported" {
		t.Fatalf("downgrade with ip rules: %v", err)
	}
	if now := e.svc.ByName("premium1"); now.SKU != "Premium" || now.PublicAccess() != "Disabled" {
		t.Fatalf("a refused downgrade changed the registry: %+v", now)
	}
	// With a private endpoint connection, too.
	if _, err := e.svc.Patch(ctx, "sub", "rg", "premium1", Update{PublicNetworkAccess: &en, NetworkRuleSet: &NetworkRuleSet{DefaultAction: "Allow"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Connect(ctx, got.ID(), []string{"registry"}, Endpoint{ID: "/x/pe1", Name: "pe1", Network: vnetA}, true, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Patch(ctx, "sub", "rg", "premium1", Update{SKU: &std}); code(err) != "PrivateEndpointConnectionsNotSupported" {
		t.Fatalf("downgrade with a private endpoint connection: %v", err)
	}
	if err := e.svc.Disconnect(ctx, got.ID(), "/x/pe1"); err != nil {
		t.Fatal(err)
	}
	if r, err := e.svc.Patch(ctx, "sub", "rg", "premium1", Update{SKU: &std}); err != nil || r.SKU != "Standard" {
		t.Fatalf("downgrade without network features: %v", err)
	}
}

func TestConnections(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := reg("linked1")
	r.SKU = "Premium"
	r, _, err := e.svc.CreateOrUpdate(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	std := reg("standard1")
	std, _, err = e.svc.CreateOrUpdate(ctx, std)
	if err != nil {
		t.Fatal(err)
	}
	ep := Endpoint{ID: "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/privateEndpoints/pe1", Name: "pe1", Network: vnetA}
	if _, err := e.svc.Connect(ctx, std.ID(), []string{"registry"}, ep, true, ""); code(err) != "PrivateEndpointBadRequest" {
		t.Fatalf("connect to a Standard registry: %v", err)
	}
	if _, err := e.svc.Connect(ctx, r.ID()+"x", []string{"registry"}, ep, true, ""); code(err) != "PrivateLinkServiceNotFound" {
		t.Fatalf("connect to a missing registry: %v", err)
	}
	if _, err := e.svc.Connect(ctx, r.ID(), []string{"registry_data_westus"}, ep, true, ""); code(err) != "PrivateEndpointBadRequest" {
		t.Fatalf("connect to a wrong group: %v", err)
	}
	c, err := e.svc.Connect(ctx, r.ID(), []string{"registry"}, ep, true, "")
	if err != nil || c.Status != StatusApproved {
		t.Fatalf("connect: %+v %v", c, err)
	}
	again, err := e.svc.Connect(ctx, r.ID(), []string{"registry"}, ep, true, "")
	if err != nil || again.Name != c.Name {
		t.Fatalf("connect again: %+v %v", again, err)
	}
	off := AccessDisabled
	if _, err := e.svc.Patch(ctx, "sub", "rg", "linked1", Update{PublicNetworkAccess: &off}); err != nil {
		t.Fatal(err)
	}
	in := Caller{Kind: FromGroup, Network: vnetA}
	if !e.svc.Allowed("LINKED1", in) || e.svc.Allowed("linked1", Caller{Kind: FromHost, Addr: netip.MustParseAddr("127.0.0.1")}) {
		t.Fatal("decision with an approved connection")
	}
	if st, ok := e.svc.ConnectionOf(ctx, r.ID(), ep.ID); !ok || st.Status != StatusApproved {
		t.Fatalf("ConnectionOf: %+v %v", st, ok)
	}
	// Rejecting shuts the endpoint's network out; a rejected connection
	// cannot be approved again.
	if _, _, err := e.svc.SetConnectionState(ctx, "sub", "rg", "linked1", c.Name, "Rejected", "no"); err != nil {
		t.Fatal(err)
	}
	if e.svc.Allowed("linked1", in) {
		t.Fatal("a rejected connection still lets its network in")
	}
	if _, _, err := e.svc.SetConnectionState(ctx, "sub", "rg", "linked1", c.Name, "Approved", ""); code(err) != "CannotApproveRejectedPrivateEndpointConnection" {
		t.Fatalf("approve a rejected connection: %v", err)
	}
	if _, _, err := e.svc.SetConnectionState(ctx, "sub", "rg", "linked1", "nope", "Approved", ""); code(err) != "PrivateEndpointConnectionNotFound" {
		t.Fatalf("approve a missing connection: %v", err)
	}
	if found, err := e.svc.DeleteConnection(ctx, "sub", "rg", "linked1", c.Name); err != nil || !found {
		t.Fatalf("delete connection: %v %v", found, err)
	}
	if _, ok := e.svc.ConnectionOf(ctx, r.ID(), ep.ID); ok {
		t.Fatal("a deleted connection is still there")
	}
	// A pending connection (no approval right) waits and lets nobody in.
	p, err := e.svc.Connect(ctx, r.ID(), []string{"registry"}, ep, false, "please")
	if err != nil || p.Status != StatusPending || p.Description != "please" || e.svc.Allowed("linked1", in) {
		t.Fatalf("pending connection: %+v %v", p, err)
	}
	if _, _, err := e.svc.SetConnectionState(ctx, "sub", "rg", "linked1", p.Name, "approved", "ok"); err != nil || !e.svc.Allowed("linked1", in) {
		t.Fatalf("approve a pending connection: %v", err)
	}
}
