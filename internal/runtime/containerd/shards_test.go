package containerd

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/runtimetest"
)

// TestDefaultNetworkShards: with two groups per bridge, the default network
// spills over to new bridges, each with its own slice and gateway; groups of
// every shard answer the host and each other, reach a service on their own
// gateway (where berth's DNS server listens) and no virtual network; all of
// it survives a runtime restart, and freed places are reused.
func TestDefaultNetworkShards(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	cfg := vnetConfig(t)
	cfg.bridgePorts = 2

	// A stand-in for berth's DNS server: a TCP listener on every gateway
	// the runtime reports, answering with the gateway it listens on.
	var (
		mu        sync.Mutex
		listeners = map[netip.Addr]net.Listener{}
	)
	serveOn := func(gw netip.Addr) {
		mu.Lock()
		defer mu.Unlock()
		if listeners[gw] != nil {
			return
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(gw.String(), "5353"))
		if err != nil {
			t.Errorf("listen on gateway %s: %v", gw, err)
			return
		}
		listeners[gw] = ln
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprint(c, gw.String())
				c.Close()
			}
		}()
	}
	var asked []netip.Addr
	cfg.OnBridge = serveOn
	cfg.DefaultDNS = func(network string, gw netip.Addr) runtime.DNSSpec {
		mu.Lock()
		asked = append(asked, gw)
		mu.Unlock()
		return runtime.DNSSpec{Nameservers: []string{gw.String()}}
	}

	rt := newTestRuntime(t, cfg)
	ctx := context.Background()
	var bridges []string
	t.Cleanup(func() {
		cleanupRuntime(t, rt)
		for _, b := range bridges {
			exec.Command("ip", "link", "delete", b).Run()
		}
		if rt.removeFirewall(context.Background()) != nil {
			t.Errorf("cleanup: firewall")
		}
		mu.Lock()
		for _, ln := range listeners {
			ln.Close()
		}
		mu.Unlock()
	})
	for _, gw := range rt.DefaultGateways() {
		serveOn(gw)
	}
	vn := Network{Name: "vnet-s/subnet-1", Domain: "vnet-s", Prefix: testPrefixes(t, rt, 1)[0]}
	if err := rt.EnsureNetwork(ctx, vn); err != nil {
		t.Fatal(err)
	}
	vb, _ := rt.Bridge(vn.Name)
	bridges = append(bridges, vb)

	const n = 5
	specs := make([]runtime.GroupSpec, n)
	ips := make([]string, n)
	for i := range n {
		specs[i] = serveSpec(runtimetest.GroupID(fmt.Sprintf("sh%d", i)), image, host, runtime.RestartAlways)
		st, err := rt.CreateGroup(ctx, specs[i]) // removed by cleanupRuntime
		if err != nil {
			t.Fatal(err)
		}
		ips[i] = st.IP
	}
	vspec := serveSpec(runtimetest.GroupID("shv"), image, host, runtime.RestartAlways)
	vspec.Network = vn.Name
	vst, err := rt.CreateGroup(ctx, vspec)
	if err != nil {
		t.Fatal(err)
	}
	got := rt.DefaultBridges()
	bridges = append(bridges, got[1:]...)
	want := []string{cfg.BridgeName, cfg.NetworkPrefix + "-1", cfg.NetworkPrefix + "-2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("default bridges %v, want %v", got, want)
	}
	gws := rt.DefaultGateways()
	subnet := netip.MustParsePrefix(cfg.Subnet)
	shardOf := func(i int) int {
		a := netip.MustParseAddr(ips[i])
		for s, gw := range gws {
			if netip.PrefixFrom(gw, 29).Masked().Contains(a) {
				return s
			}
		}
		t.Fatalf("group %d: address %s on no shard (gateways %v)", i, a, gws)
		return -1
	}
	for i := range n {
		if !subnet.Contains(netip.MustParseAddr(ips[i])) {
			t.Fatalf("group %d: address %s outside %s", i, ips[i], subnet)
		}
		if s := shardOf(i); s != i/2 {
			t.Errorf("group %d on shard %d, want %d", i, s, i/2)
		}
	}
	for i, b := range want {
		entries, err := os.ReadDir("/sys/class/net/" + b + "/brif")
		if err != nil {
			t.Fatalf("bridge %s: %v", b, err)
		}
		if wantPorts := min(2, n-2*i); len(entries) != wantPorts {
			t.Errorf("bridge %s has %d ports, want %d", b, len(entries), wantPorts)
		}
	}

	check := func(stage string) {
		t.Helper()
		for i := range n {
			waitConnect(t, rt, "", ips[i]+":8080") // the host reaches every shard
			// Each shard's group reaches the others, through the host.
			waitConnect(t, rt, specs[i].ID, ips[(i+2)%n]+":8080")
			// resolv.conf names the group's own gateway, which answers.
			b, err := os.ReadFile(rt.resolvConfPath(specs[i].ID))
			gw := gws[shardOf(i)]
			if err != nil || !strings.Contains(string(b), "nameserver "+gw.String()+"\n") {
				t.Errorf("%s: group %d resolv.conf %q (%v), want nameserver %s", stage, i, b, err, gw)
			}
			c, err := inNetNS(rt.netnsPath(specs[i].ID), func() (net.Conn, error) {
				return net.Dial("tcp", net.JoinHostPort(gw.String(), "5353"))
			})
			if err != nil {
				t.Errorf("%s: group %d cannot reach its gateway %s: %v", stage, i, gw, err)
				continue
			}
			buf := make([]byte, 64)
			k, _ := c.Read(buf)
			c.Close()
			if string(buf[:k]) != gw.String() {
				t.Errorf("%s: group %d: gateway answered %q", stage, i, buf[:k])
			}
			// Public groups and virtual networks stay apart.
			if err := canConnect(rt, specs[i].ID, vst.IP+":8080"); err == nil {
				t.Errorf("%s: public group %d reached the virtual network", stage, i)
			}
			if err := canConnect(rt, vspec.ID, ips[i]+":8080"); err == nil {
				t.Errorf("%s: the virtual network reached public group %d", stage, i)
			}
		}
		waitConnect(t, rt, "", vst.IP+":8080")
	}
	check("created")

	// Restart: shards, addresses and the firewall come back.
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rt.removeFirewall(ctx); err != nil {
		t.Fatal(err)
	}
	rt = newTestRuntime(t, cfg)
	if got := rt.DefaultBridges(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("default bridges after restart %v, want %v", got, want)
	}
	for i := range n {
		st, err := rt.RecoverGroup(ctx, specs[i])
		if err != nil {
			t.Fatal(err)
		}
		if st.IP != ips[i] {
			t.Errorf("group %d: address %s after restart, was %s", i, st.IP, ips[i])
		}
	}
	if _, err := rt.RecoverGroup(ctx, vspec); err != nil {
		t.Fatal(err)
	}
	check("restarted")

	// Shard 2 has a place left; once group 0 is gone, shard 0 has one.
	extra := serveSpec(runtimetest.GroupID("sh5"), image, host, runtime.RestartAlways)
	st, err := rt.CreateGroup(ctx, extra)
	if err != nil {
		t.Fatal(err)
	}
	if !netip.PrefixFrom(gws[2], 29).Masked().Contains(netip.MustParseAddr(st.IP)) {
		t.Errorf("sixth group at %s, want shard 2 (%s)", st.IP, gws[2])
	}
	if err := rt.DeleteGroup(ctx, specs[0].ID); err != nil {
		t.Fatal(err)
	}
	again := serveSpec(runtimetest.GroupID("sh6"), image, host, runtime.RestartAlways)
	st, err = rt.CreateGroup(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if !netip.PrefixFrom(gws[0], 29).Masked().Contains(netip.MustParseAddr(st.IP)) {
		t.Errorf("group after a delete at %s, want shard 0 (%s)", st.IP, gws[0])
	}
	if len(rt.DefaultBridges()) != 3 {
		t.Errorf("bridges %v, want no new one", rt.DefaultBridges())
	}
}
