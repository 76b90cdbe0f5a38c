package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/registries"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store/memory"
)

// TestFirewall: a registry's listener refuses the host with ACR's 403 once
// public access is off, lets connections marked as a trusted service or a
// group in the endpoint's virtual network through, and leaves the default
// registry (no service) alone.
func TestFirewall(t *testing.T) {
	st := memory.New()
	clk := clock.Real{}
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &resources.Service{Store: st, Clock: clk, Operations: ops}
	ctx := context.Background()
	regs := &registries.Service{Store: st, Clock: clk, Resources: res, Operations: ops, Host: plHost{}, LoginHost: "127.0.0.1", FirstPort: 7701}
	if err := regs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(regs.Close)
	if err := res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	res.EnsureSubscription(ctx, resources.Subscription{ID: plSub, TenantID: "t"})
	res.CreateOrUpdate(ctx, resources.ResourceGroup{Subscription: plSub, Name: "rg", Location: "westeurope"})
	r, _, err := regs.CreateOrUpdate(ctx, &registries.Registry{Subscription: plSub, ResourceGroup: "rg", Name: "closed1", Location: "westeurope",
		SKU: "Premium", PublicNetworkAccess: "Disabled"})
	if err != nil {
		t.Fatal(err)
	}
	const vnet = "/subscriptions/" + plSub + "/resourcegroups/rg/providers/microsoft.network/virtualnetworks/a"
	if _, err := regs.Connect(ctx, r.ID(), []string{"registry"}, registries.Endpoint{ID: "/pe", Name: "pe", Network: vnet}, true, ""); err != nil {
		t.Fatal(err)
	}
	h := &registryHost{trusted: &trustedConns{}}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "in") })
	closed := httptest.NewServer(h.firewall("closed1", regs, ok))
	defer closed.Close()
	open := httptest.NewServer(h.firewall("berth", nil, ok))
	defer open.Close()

	get := func(c *http.Client, url string) (int, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	base := http.DefaultTransport.(*http.Transport)
	if code, body := get(http.DefaultClient, closed.URL+"/v2/"); code != 403 ||
		body != `{"errors":[{"code":"DENIED","message":"client with IP '127.0.0.1' is not allowed access. Refer https://aka.ms/acr/firewall to grant access."}]}` {
		t.Fatalf("host: %d %s", code, body)
	}
	if code, _ := get(http.DefaultClient, open.URL+"/v2/"); code != 200 {
		t.Fatalf("default registry: %d", code)
	}
	for _, c := range []struct {
		who  registries.Caller
		want int
	}{
		{registries.Caller{Kind: registries.FromTrustedService}, 200},
		{registries.Caller{Kind: registries.FromSelf}, 200},
		{registries.Caller{Kind: registries.FromGroup, Network: strings.ToUpper(vnet)}, 200},
		{registries.Caller{Kind: registries.FromGroup, Network: vnet + "b"}, 403},
		{registries.Caller{Kind: registries.FromGroup}, 403},
	} {
		cl := &http.Client{Transport: h.trusted.transport(base, c.who)}
		if code, _ := get(cl, closed.URL+"/v2/"); code != c.want {
			t.Errorf("%+v: %d, want %d", c.who, code, c.want)
		}
		cl.CloseIdleConnections()
	}
	if got := vnetOf(vnet + "/subnets/aci"); got != vnet {
		t.Errorf("vnetOf = %q", got)
	}
}
