package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/berth-dev/berth/internal/dns"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/network/networktest"
	"github.com/berth-dev/berth/internal/runtime/containerd"
)

func randN(n int64) int64 {
	v, _ := rand.Int(rand.Reader, big.NewInt(n))
	return v.Int64()
}

// TestNetworkRuntimeDNS: berth's DNS server follows the bridges, the
// default one and each subnet's, and answers its zone there (queried from
// the host on berth's own bridge addresses only).
func TestNetworkRuntimeDNS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (bridges, containerd): run `make test` as root, as CI does")
	}
	var bridge string
	var i int64
	for {
		i = 2 + randN(250)
		bridge = fmt.Sprintf("bertns%d", i)
		if _, err := os.Stat("/sys/class/net/" + bridge); os.IsNotExist(err) {
			break
		}
	}
	dir, err := os.MkdirTemp("", "berth-srv-")
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("qs%c%c", 'a'+rune(randN(26)), 'a'+rune(randN(26)))
	ctx := context.Background()
	rt, err := containerd.New(ctx, containerd.Config{DataDir: dir, Namespace: "berthtest", BridgeName: bridge,
		Subnet: fmt.Sprintf("10.214.%d.0/24", i), NetworkPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	names := dns.New(dns.Config{Upstreams: []string{}})
	t.Cleanup(func() {
		names.Close()
		if err := rt.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		exec.Command("ip", "link", "delete", bridge).Run()
		if m, _ := filepath.Glob("/sys/class/net/" + prefix + "*"); len(m) > 0 {
			t.Errorf("bridges left: %v", m)
		}
		os.RemoveAll(dir)
	})
	nr := &netRuntime{rt: rt, dns: names, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	nr.listenAll()
	names.Set("web.westeurope.azurecontainer.io", "10.214.0.9")

	ask := func(server string) (*mdns.Msg, error) {
		m := new(mdns.Msg)
		m.SetQuestion("web.westeurope.azurecontainer.io.", mdns.TypeA)
		r, _, err := (&mdns.Client{Timeout: 3 * time.Second}).Exchange(m, server+":53")
		return r, err
	}
	def := nr.Nameservers("")
	if len(def) != 1 || !strings.HasPrefix(def[0], fmt.Sprintf("10.214.%d.", i)) {
		t.Fatalf("default nameservers %v", def)
	}
	if r, err := ask(def[0]); err != nil || len(r.Answer) != 1 {
		t.Fatalf("DNS on the default bridge: %v %v", err, r)
	}

	free := freePrefixes(t, nr, 4)
	sub := free[3]
	networktest.Suite(t, networktest.Env{Runtime: nr, Free: [3]netip.Prefix{free[0], free[1], free[2]}})
	n := network.RuntimeNetwork{Name: "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/virtualnetworks/v/subnets/a",
		Domain: "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/virtualnetworks/v", Prefix: sub}
	if err := nr.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	ns := nr.Nameservers(n.Name)
	if len(ns) != 1 || ns[0] != sub.Addr().Next().String() {
		t.Fatalf("subnet nameservers %v", ns)
	}
	if r, err := ask(ns[0]); err != nil || len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "10.214.0.9" {
		t.Fatalf("DNS on the subnet's bridge: %v %v", err, r)
	}
	if nets, _ := nr.Networks(ctx); len(nets) != 1 || nets[0] != n {
		t.Fatalf("networks %v", nets)
	}
	if err := nr.RemoveNetwork(ctx, n.Name); err != nil {
		t.Fatal(err)
	}
	if nr.Nameservers(n.Name) != nil || names.Listening(ns[0]+":53") {
		t.Fatal("DNS still on a removed subnet")
	}
}

// freePrefixes returns n consecutive /24s in 10.220.0.0–10.249.255.0 that
// overlap nothing on the host.
func freePrefixes(t *testing.T, nr *netRuntime, n int) []netip.Prefix {
	t.Helper()
	host, err := nr.HostPrefixes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		b, c := 220+randN(30), randN(240)
		var out []netip.Prefix
		for i := range int64(n) {
			p := netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", b, c+i))
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
	t.Fatal("no free prefixes")
	return nil
}
