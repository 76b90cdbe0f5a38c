// Package networktest is the conformance suite of network.Runtime: every
// implementation (the containerd runtime behind the server's adapter, the
// in-memory one) runs it.
package networktest

import (
	"context"
	"net/netip"
	"testing"

	"github.com/berth-dev/berth/internal/network"
)

// Env is what the suite needs: the runtime, and three /24s free on the
// host (not overlapping anything HostPrefixes reports).
type Env struct {
	Runtime network.Runtime
	Free    [3]netip.Prefix
}

// Suite checks network.Runtime's contract. It leaves no network behind.
func Suite(t *testing.T, e Env) {
	ctx := context.Background()
	rt := e.Runtime
	a := network.RuntimeNetwork{Name: "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/virtualnetworks/v1/subnets/a",
		Domain: "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/virtualnetworks/v1", Prefix: e.Free[0]}
	b := network.RuntimeNetwork{Name: "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/virtualnetworks/v2/subnets/b",
		Domain: "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/virtualnetworks/v2", Prefix: e.Free[1]}
	t.Cleanup(func() {
		rt.RemoveNetwork(ctx, a.Name)
		rt.RemoveNetwork(ctx, b.Name)
	})
	before, err := rt.Networks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []network.RuntimeNetwork{a, a, b} {
		if err := rt.EnsureNetwork(ctx, n); err != nil {
			t.Fatalf("EnsureNetwork(%s): %v", n.Name, err)
		}
	}
	moved := a
	moved.Prefix = e.Free[2]
	if err := rt.EnsureNetwork(ctx, moved); err == nil {
		t.Error("EnsureNetwork changed a network's prefix in place")
	}
	clash := network.RuntimeNetwork{Name: a.Name + "x", Domain: "other", Prefix: e.Free[0]}
	if err := rt.EnsureNetwork(ctx, clash); err == nil {
		t.Error("EnsureNetwork made an overlapping network")
		rt.RemoveNetwork(ctx, clash.Name)
	}
	nets, err := rt.Networks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, n := range nets {
		if n == a || n == b {
			found++
		}
	}
	if found != 2 || len(nets) != len(before)+2 {
		t.Errorf("Networks = %v, want %v and %v added", nets, a, b)
	}
	host, err := rt.HostPrefixes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range host {
		if h == a.Prefix || h == b.Prefix {
			t.Errorf("HostPrefixes reports the runtime's own network %s", h)
		}
	}
	for _, n := range []network.RuntimeNetwork{a, a, b} {
		if err := rt.RemoveNetwork(ctx, n.Name); err != nil {
			t.Fatalf("RemoveNetwork(%s): %v", n.Name, err)
		}
	}
	if nets, _ := rt.Networks(ctx); len(nets) != len(before) {
		t.Errorf("Networks after removal = %v", nets)
	}
}
