package containerd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/runtimetest"
)

var metaAddr = netip.MustParseAddrPort("169.254.169.254:80")

// whoServe answers one HTTP request with the id of the group the runtime
// says the connection came from.
func whoServe(id string, c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
		return
	}
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(id), id)
}

// askFrom GETs http://addr/ from inside group id's network namespace (from
// the host when id is "") and returns the body; an error when the
// connection fails or closes without an answer.
func askFrom(rt *Runtime, id, addr string) (string, error) {
	get := func() (string, error) {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if id == "" {
		return get()
	}
	return inNetNS(rt.netnsPath(id), get)
}

// TestRedirect: a group whose container binds 0.0.0.0:80 without declaring
// it runs (nothing of berth's listens inside the group) and still reaches
// the redirect at 169.254.169.254:80, which knows it as its own group; so
// do a group on another bridge of the default network and one on a virtual
// network made after the redirect. A group cannot pass itself off through
// another bridge's gateway listener, nor can the host. After a restart the
// rules and listeners come back; the chain goes with the firewall.
func TestRedirect(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	cfg := vnetConfig(t)
	cfg.bridgePorts = 1 // each group of the default network its own bridge
	rt := newTestRuntime(t, cfg)
	t.Cleanup(func() {
		cleanupRuntime(t, rt)
		if err := rt.RemoveNetwork(context.Background(), "redir-net"); err != nil {
			t.Errorf("cleanup: remove network: %v", err)
		}
		for _, b := range rt.DefaultBridges()[1:] {
			deleteLink(context.Background(), b)
		}
		if rt.removeFirewall(context.Background()) != nil {
			t.Error("firewall left")
		}
	})
	ctx := context.Background()
	if err := rt.AddRedirect(ctx, Redirect{Addr: metaAddr, Serve: whoServe}); err != nil {
		t.Fatal(err)
	}

	// A web server on 0.0.0.0:80, undeclared, beside a client asking the
	// redirect.
	a := runtime.GroupSpec{
		ID: runtimetest.GroupID("redir-a"), RestartPolicy: runtime.RestartNever, Credentials: creds(host),
		Containers: []runtime.ContainerSpec{
			{Name: "web", Image: image, Env: []runtime.EnvVar{{Name: "PORT", Value: "80"}, {Name: "MARK", Value: "port80"}}},
			{Name: "client", Image: image, Command: []string{"/app", "fetch", "http://169.254.169.254/"}},
		},
	}
	create := func(spec runtime.GroupSpec) { // not runtimetest.Create: rt is replaced below
		t.Helper()
		if _, err := rt.CreateGroup(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	create(a)
	st := runtimetest.WaitStatus(t, rt, a.ID, "client done", func(st runtime.GroupStatus) bool {
		return st.Containers[1].Current.State == runtime.StateTerminated
	})
	logs, _ := runtime.ReadLogs(ctx, rt, a.ID, "client", runtime.LogOptions{})
	if st.Containers[1].Current.ExitCode != 0 || string(logs) != a.ID {
		t.Fatalf("client got %q from 169.254.169.254:80 (exit %d), want its group %q", logs, st.Containers[1].Current.ExitCode, a.ID)
	}
	if st.Containers[0].Current.State != runtime.StateRunning {
		t.Fatalf("web server on port 80: %+v", st.Containers[0].Current)
	}
	var env map[string]string
	getJSON(t, "http://"+st.IP+":80/", &env)
	if env["MARK"] != "port80" {
		t.Fatalf("port 80 of the group answered %v", env)
	}
	// The group's own port 80 is its server's, inside the group too.
	if body, err := askFrom(rt, a.ID, "127.0.0.1:80"); err != nil || !strings.Contains(body, `"MARK":"port80"`) {
		t.Fatalf("127.0.0.1:80 inside the group: %q, %v", body, err)
	}

	// A second group lands on a new bridge (a shard made after the
	// redirect) and is told apart.
	b := serveSpec(runtimetest.GroupID("redir-b"), image, host, runtime.RestartNever)
	create(b)
	if got := rt.DefaultBridges(); len(got) != 2 {
		t.Fatalf("default bridges %v, want two", got)
	}
	for _, id := range []string{a.ID, b.ID} {
		if got, err := askFrom(rt, id, metaAddr.String()); err != nil || got != id {
			t.Fatalf("group %s asked 169.254.169.254:80: %q, %v", id, got, err)
		}
	}

	// A virtual network made now gets a listener and a rule of its own.
	p := testPrefixes(t, rt, 1)[0]
	if err := rt.EnsureNetwork(ctx, Network{Name: "redir-net", Domain: "redir-vnet", Prefix: p}); err != nil {
		t.Fatal(err)
	}
	c := serveSpec(runtimetest.GroupID("redir-c"), image, host, runtime.RestartNever)
	c.Network = "redir-net"
	create(c)
	if got, err := askFrom(rt, c.ID, metaAddr.String()); err != nil || got != c.ID {
		t.Fatalf("group on a virtual network asked 169.254.169.254:80: %q, %v", got, err)
	}

	// The virtual network's group reaches the first bridge's gateway (its
	// default route is the host): the listener there knows no group of
	// its bridge at that address and closes the connection unanswered.
	rt.netMu.Lock()
	first := rt.gwListeners[gwKey{cfg.BridgeName, metaAddr}].at.String()
	own := rt.gwListeners[gwKey{rt.nets["redir-net"].net.bridge, metaAddr}].at.String()
	rt.netMu.Unlock()
	if got, err := askFrom(rt, c.ID, first); err == nil {
		t.Fatalf("a group on another bridge got %q from the first bridge's listener", got)
	}
	if got, err := askFrom(rt, "", own); err == nil {
		t.Fatalf("the host got %q from a gateway listener", got)
	}
	// The host's own traffic to 169.254.169.254 is not redirected.
	if out, _ := exec.Command("iptables", "-t", "nat", "-S", rt.chainName()).Output(); strings.Count(string(out), "DNAT") != 3 ||
		strings.Contains(string(out), "OUTPUT") {
		t.Fatalf("nat chain: %s", out)
	}

	// berth restarts: the rules and listeners come back (new ports).
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	rt = newTestRuntime(t, cfg)
	if err := rt.AddRedirect(ctx, Redirect{Addr: metaAddr, Serve: whoServe}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []runtime.GroupSpec{a, b, c} {
		if _, err := rt.RecoverGroup(ctx, s); err != nil {
			t.Fatal(err)
		}
		if got, err := askFrom(rt, s.ID, metaAddr.String()); err != nil || got != s.ID {
			t.Fatalf("after a restart, group %s asked 169.254.169.254:80: %q, %v", s.ID, got, err)
		}
	}

	// Removing the network removes its listener and rule.
	if err := rt.DeleteGroup(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemoveNetwork(ctx, "redir-net"); err != nil {
		t.Fatal(err)
	}
	rt.netMu.Lock()
	n := len(rt.gwListeners)
	rt.netMu.Unlock()
	if out, _ := exec.Command("iptables", "-t", "nat", "-S", rt.chainName()).Output(); n != 2 || strings.Count(string(out), "DNAT") != 2 {
		t.Fatalf("after removing the network: %d listeners, nat chain %s", n, out)
	}
}
