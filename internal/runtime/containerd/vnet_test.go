package containerd

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/runtimetest"
)

// vnetConfig is testConfig with a network prefix of its own, so that the
// firewall rules of concurrent test runtimes never match each other's
// bridges.
func vnetConfig(t *testing.T) Config {
	t.Helper()
	cfg := testConfig(t)
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	for {
		p := "q"
		for range 3 {
			n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alnum))))
			p += string(alnum[n.Int64()])
		}
		if m, _ := filepath.Glob("/sys/class/net/" + p + "*"); len(m) == 0 {
			cfg.NetworkPrefix = p
			return cfg
		}
	}
}

// testPrefixes returns n /24s of one random /16 in 10.220.0.0–10.250.255.0
// that overlap nothing on the host.
func testPrefixes(t *testing.T, rt *Runtime, n int) []netip.Prefix {
	t.Helper()
	host, err := rt.HostPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		b, _ := rand.Int(rand.Reader, big.NewInt(31))
		c, _ := rand.Int(rand.Reader, big.NewInt(200))
		var out []netip.Prefix
		for i := range n {
			p := netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 220+b.Int64(), c.Int64()+int64(i)))
			for _, h := range host {
				if h.Overlaps(p) {
					p = netip.Prefix{}
					break
				}
			}
			if !p.IsValid() {
				break
			}
			out = append(out, p)
		}
		if len(out) == n {
			return out
		}
	}
	t.Fatal("no free test prefixes")
	return nil
}

// canConnect dials addr from inside group id's network namespace (or from
// the host when id is ""), waiting at most a second.
func canConnect(rt *Runtime, id, addr string) error {
	dial := func() (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }
	var c net.Conn
	var err error
	if id == "" {
		c, err = dial()
	} else {
		c, err = inNetNS(rt.netnsPath(id), dial)
	}
	if err == nil {
		c.Close()
	}
	return err
}

// waitConnect waits (bounded) until id reaches addr.
func waitConnect(t *testing.T, rt *Runtime, id, addr string) {
	t.Helper()
	deadline := time.Now().Add(runtimetest.Timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = canConnect(rt, id, addr); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%q cannot reach %s: %v", id, addr, err)
}

func TestVirtualNetworks(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	cfg := vnetConfig(t)
	rt := newTestRuntime(t, cfg)
	ctx := context.Background()
	pfx := testPrefixes(t, rt, 3)
	nets := []Network{
		{Name: "vnet-a/subnet-1", Domain: "vnet-a", Prefix: pfx[0]},
		{Name: "vnet-a/subnet-2", Domain: "vnet-a", Prefix: pfx[1]},
		{Name: "vnet-b/subnet-1", Domain: "vnet-b", Prefix: pfx[2]},
	}
	var bridges []string
	t.Cleanup(func() {
		cleanupRuntime(t, rt)
		for _, b := range bridges {
			exec.Command("ip", "link", "delete", b).Run()
		}
		if rt.removeFirewall(context.Background()) != nil {
			t.Errorf("cleanup: firewall")
		}
	})
	for _, n := range nets {
		if err := rt.EnsureNetwork(ctx, n); err != nil {
			t.Fatalf("EnsureNetwork %s: %v", n.Name, err)
		}
		if err := rt.EnsureNetwork(ctx, n); err != nil {
			t.Fatalf("EnsureNetwork again %s: %v", n.Name, err)
		}
		b, _ := rt.Bridge(n.Name)
		if len(b) > 15 || !strings.HasPrefix(b, cfg.NetworkPrefix) {
			t.Fatalf("bridge %q", b)
		}
		bridges = append(bridges, b)
	}
	if err := rt.EnsureNetwork(ctx, Network{Name: "vnet-c/x", Domain: "vnet-c", Prefix: pfx[0]}); err == nil {
		t.Fatal("an overlapping network was created")
	}
	if err := rt.EnsureNetwork(ctx, Network{Name: nets[0].Name, Domain: "vnet-a", Prefix: pfx[2]}); err == nil {
		t.Fatal("a network changed its prefix in place")
	}

	// One web server per network, and one public.
	ids := map[string]string{}
	ips := map[string]string{}
	for i, n := range append(nets, Network{}) {
		spec := serveSpec(runtimetest.GroupID(fmt.Sprintf("vn%d", i)), image, host, runtime.RestartAlways)
		spec.Network = n.Name
		st, err := rt.CreateGroup(ctx, spec) // removed by cleanupRuntime
		if err != nil {
			t.Fatal(err)
		}
		ids[n.Name], ips[n.Name] = spec.ID, st.IP
		if n.Name != "" {
			want := n.Prefix.Addr().Next().Next().Next().Next()
			if a := netip.MustParseAddr(st.IP); !n.Prefix.Contains(a) || a.Less(want) {
				t.Fatalf("group in %s got %s", n.Prefix, st.IP)
			}
		}
	}
	a1, a2, b1, pub := nets[0].Name, nets[1].Name, nets[2].Name, ""
	for _, n := range []string{a1, a2, b1, pub} {
		waitConnect(t, rt, "", ips[n]+":8080") // the host reaches all
	}
	waitConnect(t, rt, ids[a1], ips[a2]+":8080")
	waitConnect(t, rt, ids[a2], ips[a1]+":8080")
	for _, c := range [][2]string{{b1, a1}, {a1, b1}, {pub, a1}, {a1, pub}, {b1, pub}, {pub, b1}} {
		if err := canConnect(rt, ids[c[0]], ips[c[1]]+":8080"); err == nil {
			t.Errorf("group in %q reached group in %q", c[0], c[1])
		}
	}
	// It is the firewall that keeps them apart: without it they connect.
	if err := rt.removeFirewall(ctx); err != nil {
		t.Fatal(err)
	}
	waitConnect(t, rt, ids[b1], ips[a1]+":8080")
	rt.netMu.Lock()
	err := rt.syncFirewall(ctx)
	rt.netMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := canConnect(rt, ids[b1], ips[a1]+":8080"); err == nil {
		t.Errorf("isolation not restored")
	}
	// The gateway answers the group (the host's address on its bridge).
	gw, _ := rt.Gateway(a1)
	if !nets[0].Prefix.Contains(gw) {
		t.Errorf("gateway %s", gw)
	}

	// Restart with the firewall gone: it is re-created, isolation holds.
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rt.removeFirewall(ctx); err != nil {
		t.Fatal(err)
	}
	rt = newTestRuntime(t, cfg)
	if len(rt.Networks()) != 3 {
		t.Fatalf("networks after restart: %v", rt.Networks())
	}
	for _, b := range bridges {
		if _, err := os.Stat("/sys/class/net/" + b); err != nil {
			t.Errorf("bridge %s after restart: %v", b, err)
		}
	}
	if err := canConnect(rt, ids[b1], ips[a1]+":8080"); err == nil {
		t.Errorf("isolation lost after restart")
	}
	waitConnect(t, rt, ids[a2], ips[a1]+":8080")

	if err := rt.RemoveNetwork(ctx, a1); !errors.Is(err, ErrNetworkInUse) {
		t.Errorf("remove a network in use: %v", err)
	}
	for _, n := range []string{a1, a2, b1, pub} {
		if err := rt.DeleteGroup(ctx, ids[n]); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nets {
		if err := rt.RemoveNetwork(ctx, n.Name); err != nil {
			t.Fatalf("RemoveNetwork %s: %v", n.Name, err)
		}
		if err := rt.RemoveNetwork(ctx, n.Name); err != nil {
			t.Fatalf("RemoveNetwork again %s: %v", n.Name, err)
		}
	}
	for _, b := range bridges {
		if _, err := os.Stat("/sys/class/net/" + b); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("bridge %s left: %v", b, err)
		}
	}
	if iptables(ctx, "-n", "-L", rt.chainName()) == nil {
		t.Errorf("chain %s left", rt.chainName())
	}
	if out, _ := exec.Command("iptables", "-S", "FORWARD").Output(); strings.Contains(string(out), rt.chainName()) {
		t.Errorf("jump to %s left: %s", rt.chainName(), out)
	}
}
