package containerd

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/runtimetest"
)

// TestCallers: connections berth opens for a group (its forward's relays,
// the pulls of its images) are known to CallerOf by their local address,
// with the group, its network and address; the host's own are not.
func TestCallers(t *testing.T) {
	requireRoot(t)
	_, _, _ = registryEnv(t)
	var rtp atomic.Pointer[Runtime]
	var mu sync.Mutex
	type call struct {
		c  Caller
		ok bool
	}
	seen := map[string][]call{} // by what: "service", "registry"
	record := func(what string, r *http.Request) {
		c, ok := rtp.Load().CallerOf(r.RemoteAddr, r.Context().Value(http.LocalAddrContextKey).(net.Addr).String())
		mu.Lock()
		seen[what] = append(seen[what], call{c, ok})
		mu.Unlock()
	}
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("service", r)
		io.WriteString(w, "ok")
	}))
	defer svc.Close()
	// The test registry's content behind a second listener that records
	// who pulls.
	reg := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("registry", r)
		testReg.srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "https://")
	addr := strings.TrimPrefix(svc.URL, "http://")
	cfg := testConfig(t)
	cfg.Forwards = []Forward{{Listen: addr, Target: addr}}
	rt := newTestRuntime(t, cfg)
	rtp.Store(rt)
	t.Cleanup(func() { cleanupRuntime(t, rt) })

	spec := serveSpec(runtimetest.GroupID("callers"), host+"/berth/testapp:v1", host, runtime.RestartNever)
	spec.Containers[0].Command = []string{"/app", "fetch", svc.URL + "/"}
	st, err := rt.CreateGroup(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitStatus(t, rt, spec.ID, "fetched", runtimetest.Terminated)
	// The host's own request.
	if resp, err := http.Get(svc.URL); err == nil {
		resp.Body.Close()
	}

	mu.Lock()
	defer mu.Unlock()
	if len(seen["registry"]) == 0 {
		t.Fatal("the pull never reached the registry")
	}
	for _, c := range seen["registry"] {
		if !c.ok || c.c != (Caller{Network: ""}) {
			t.Errorf("pull connection's caller %+v, want the default network's", c)
		}
	}
	svcSeen := seen["service"]
	if len(svcSeen) != 2 {
		t.Fatalf("service requests: %+v", svcSeen)
	}
	if c := svcSeen[0]; !c.ok || c.c.Group != spec.ID || c.c.Network != "" || c.c.Addr.String() != st.IP {
		t.Errorf("forwarded connection's caller %+v, want group %s at %s", c, spec.ID, st.IP)
	}
	if c := svcSeen[1]; c.ok {
		t.Errorf("the host's connection is known as %+v", c.c)
	}
}

// addrConn is a net.Conn with given addresses (only they are used).
type addrConn struct {
	net.Conn
	local, remote net.Addr
}

func (c addrConn) LocalAddr() net.Addr  { return c.local }
func (c addrConn) RemoteAddr() net.Addr { return c.remote }
func (c addrConn) Close() error         { return nil }

// TestCallersKeyedByBothEnds: one ephemeral port may serve connections to
// two listeners at once (an idle pull connection of one network to one
// registry, a relay of another group to a second registry); each listener
// must find its own connection's caller.
func TestCallersKeyedByBothEnds(t *testing.T) {
	r := &Runtime{}
	cs := &r.callers
	tcp := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	a := cs.track(addrConn{local: tcp("127.0.0.1:50000"), remote: tcp("127.0.0.1:7444")}, Caller{Network: "vnet-a"})
	b := cs.track(addrConn{local: tcp("127.0.0.1:50000"), remote: tcp("127.0.0.1:7445")}, Caller{Network: "vnet-b"})
	if c, ok := r.CallerOf("127.0.0.1:50000", "127.0.0.1:7445"); !ok || c.Network != "vnet-b" {
		t.Fatalf("registry 7445 sees %+v %v, want vnet-b", c, ok)
	}
	if c, ok := r.CallerOf("127.0.0.1:50000", "127.0.0.1:7444"); !ok || c.Network != "vnet-a" {
		t.Fatalf("registry 7444 sees %+v %v, want vnet-a", c, ok)
	}
	b.Close()
	if _, ok := r.CallerOf("127.0.0.1:50000", "127.0.0.1:7445"); ok {
		t.Fatal("a closed connection is still known")
	}
	a.Close()
}
