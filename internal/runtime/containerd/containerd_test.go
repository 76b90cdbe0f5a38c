package containerd

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/containerd/logdriver"
	"github.com/berth-dev/berth/internal/runtime/runtimetest"
	"github.com/berth-dev/berth/internal/testutil/testimage"
)

// The test registry: go-containerregistry's in-memory registry behind TLS
// and the Docker token flow (401 + Bearer challenge, token endpoint taking
// Basic credentials or the OAuth2 password grant), as berth's registry does.
const (
	regUser  = "puller"
	regPass  = "s3cret"
	regToken = "test-token"
)

var testReg struct {
	once  sync.Once
	srv   *httptest.Server
	host  string
	image string // the test image, by tag
	err   error
}

func TestMain(m *testing.M) {
	// The test binary is the runtime's log driver (Config.LogDriver
	// defaults to this program), as berth's binary is in the product.
	if len(os.Args) > 1 && os.Args[1] == logdriver.Command {
		os.Exit(logdriver.Main(os.Args[2:]))
	}
	code := m.Run()
	if testReg.srv != nil {
		testReg.srv.Close()
	}
	os.Exit(code)
}

type tokenAuth struct{ next http.Handler }

func (a tokenAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		user, pass, ok := r.BasicAuth()
		if r.Method == http.MethodPost {
			r.ParseForm()
			user, pass, ok = r.PostForm.Get("username"), r.PostForm.Get("password"), r.PostForm.Get("grant_type") == "password"
		}
		if !ok || user != regUser || pass != regPass {
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token":%q,"access_token":%q,"expires_in":300}`, regToken, regToken)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+regToken {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="https://%s/token",service="test-registry"`, r.Host))
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
		return
	}
	a.next.ServeHTTP(w, r)
}

// requireRoot skips unprivileged runs; as root (CI) these tests always run.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root (network namespaces, containerd): run `make test` as root, as CI does")
	}
}

// registryEnv starts the test registry once and pushes the test image.
func registryEnv(t *testing.T) (host, image string, roots *x509.CertPool) {
	t.Helper()
	testReg.once.Do(func() {
		testReg.srv = httptest.NewTLSServer(tokenAuth{registry.New(registry.Logger(nilLogger()))})
		testReg.host = strings.TrimPrefix(testReg.srv.URL, "https://")
		testReg.image = testReg.host + "/berth/testapp:v1"
		testimage.Push(t, testimage.Build(t), testReg.image,
			&authn.Basic{Username: regUser, Password: regPass}, testReg.srv.Client().Transport)
	})
	if testReg.srv == nil {
		t.Fatal("test registry did not start")
	}
	pool := x509.NewCertPool()
	pool.AddCert(testReg.srv.Certificate())
	return testReg.host, testReg.image, pool
}

func creds(host string) []runtime.RegistryCredential {
	return []runtime.RegistryCredential{{Server: host, Username: regUser, Password: regPass}}
}

// testConfig returns a Config under a fresh directory, with a bridge and a
// /24 of its own (outside berth's default 10.213.0.0/16) so that tests never
// collide with a running berth or each other.
func testConfig(t *testing.T) Config {
	t.Helper()
	_, _, roots := registryEnv(t)
	var bridge, subnet string
	for {
		n, _ := rand.Int(rand.Reader, big.NewInt(250))
		i := n.Int64() + 2
		bridge, subnet = fmt.Sprintf("bertht%d", i), fmt.Sprintf("10.214.%d.0/24", i)
		if _, err := os.Stat("/sys/class/net/" + bridge); errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	// Short: the containerd socket path must fit in 107 bytes.
	dir, err := os.MkdirTemp("", "berth-rt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove data dir: %v", err)
		}
	})
	return Config{
		DataDir:        dir,
		Namespace:      "berthtest",
		BridgeName:     bridge,
		Subnet:         subnet,
		RootCAs:        roots,
		RestartBackOff: 200 * time.Millisecond,
		StopTimeout:    2 * time.Second,
	}
}

// newTestRuntime starts a runtime for cfg; cleanup deletes its groups, stops
// its containerd and removes the bridge.
func newTestRuntime(t *testing.T, cfg Config) *Runtime {
	t.Helper()
	rt, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return rt
}

// cleanupRuntime deletes every group rt has, closes it (stopping the
// private containerd) and removes the bridge; it fails t on leftovers.
func cleanupRuntime(t *testing.T, rt *Runtime) {
	t.Helper()
	ctx := context.Background()
	entries, _ := os.ReadDir(filepath.Join(rt.cfg.DataDir, "groups"))
	for _, e := range entries {
		if err := rt.DeleteGroup(ctx, e.Name()); err != nil {
			t.Errorf("cleanup: delete group %s: %v", e.Name(), err)
		}
	}
	if conts, err := rt.client.Containers(rt.nsctx(ctx)); err == nil && len(conts) > 0 {
		t.Errorf("cleanup: %d containers left in containerd", len(conts))
		for _, c := range conts {
			rt.removeContainer(rt.nsctx(ctx), "", c)
		}
	}
	if err := rt.Close(); err != nil {
		t.Errorf("cleanup: close: %v", err)
	}
	if out, err := exec.Command("ip", "link", "delete", rt.cfg.BridgeName).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find device") {
		t.Errorf("cleanup: remove bridge %s: %v: %s", rt.cfg.BridgeName, err, out)
	}
	// The namespace's parent cgroups (empty now; busy if another test
	// binary uses them, then they stay).
	if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + rt.cfg.Namespace); len(dirs) > 0 {
		for _, d := range dirs {
			os.Remove(d)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], rt.cfg.DataDir) {
			t.Errorf("cleanup: mount left: %s", f[4])
			syscall.Unmount(f[4], syscall.MNT_DETACH)
		}
	}
}

func TestConformance(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	rt := newTestRuntime(t, testConfig(t))
	t.Cleanup(func() { cleanupRuntime(t, rt) })
	runtimetest.Suite(t, runtimetest.Env{
		Runtime:      rt,
		Image:        image,
		Credentials:  creds(host),
		MissingImage: host + "/berth/notthere:v1",
		HostGPUs:     usableGPUs(),
	})
}

// getJSON polls url until it answers 200 and decodes the body.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(runtimetest.Timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if err := json.Unmarshal(body, v); err != nil {
					t.Fatalf("GET %s: %v: %s", url, err, body)
				}
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
}

// get does one GET and returns the body.
func get(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func serveSpec(id, image string, host string, policy runtime.RestartPolicy, env ...runtime.EnvVar) runtime.GroupSpec {
	return runtime.GroupSpec{
		ID:            id,
		RestartPolicy: policy,
		Credentials:   creds(host),
		Containers: []runtime.ContainerSpec{{
			Name:  "web",
			Image: image,
			Env:   append([]runtime.EnvVar{{Name: "PORT", Value: "8080"}}, env...),
			Ports: []runtime.Port{{Port: 8080, Protocol: "TCP"}},
		}},
	}
}

func TestNetworking(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	rt := newTestRuntime(t, testConfig(t))
	t.Cleanup(func() { cleanupRuntime(t, rt) })
	ctx := context.Background()

	t.Run("HostReachesGroup", func(t *testing.T) {
		spec := serveSpec(runtimetest.GroupID("web"), image, host, runtime.RestartAlways,
			runtime.EnvVar{Name: "GREETING", Value: "hello from berth"})
		spec.Containers[0].CPU, spec.Containers[0].MemoryBytes = 0.5, 128<<20
		st := runtimetest.Create(t, rt, spec)
		var env map[string]string
		getJSON(t, "http://"+st.IP+":8080/", &env)
		if env["GREETING"] != "hello from berth" || env["PATH"] != "/bin" {
			t.Errorf("container environment = %v", env)
		}

		s, err := rt.client.LoadContainer(rt.nsctx(ctx), containerID(spec.ID, "web"))
		if err != nil {
			t.Fatal(err)
		}
		oci, err := s.Spec(rt.nsctx(ctx))
		if err != nil {
			t.Fatal(err)
		}
		res := oci.Linux.Resources
		if *res.CPU.Quota != 50000 || *res.CPU.Period != 100000 || *res.Memory.Limit != 128<<20 {
			t.Errorf("resources: cpu %d/%d memory %d", *res.CPU.Quota, *res.CPU.Period, *res.Memory.Limit)
		}
		if oci.Hostname != spec.ID {
			t.Errorf("hostname = %q, want %q", oci.Hostname, spec.ID)
		}
	})

	t.Run("LocalhostWithinGroup", func(t *testing.T) {
		spec := serveSpec(runtimetest.GroupID("pair"), image, host, runtime.RestartNever,
			runtime.EnvVar{Name: "MARK", Value: "served-by-web"})
		spec.Containers = append(spec.Containers, runtime.ContainerSpec{
			Name: "client", Image: image, Command: []string{"/app", "fetch", "http://localhost:8080/"},
		})
		runtimetest.Create(t, rt, spec)
		st := runtimetest.WaitStatus(t, rt, spec.ID, "client done", func(st runtime.GroupStatus) bool {
			return st.Containers[1].Current.State == runtime.StateTerminated
		})
		logs, _ := runtime.ReadLogs(ctx, rt, spec.ID, "client", runtime.LogOptions{})
		if c := st.Containers[1]; c.Current.ExitCode != 0 || !strings.Contains(string(logs), `"MARK":"served-by-web"`) {
			t.Errorf("client: %+v, logs %q", c.Current, logs)
		}
	})

	t.Run("ListenInGroup", func(t *testing.T) {
		spec := serveSpec(runtimetest.GroupID("listen"), image, host, runtime.RestartNever)
		spec.Containers[0].Command = []string{"/app", "fetch", "http://127.0.0.1:7444/"}
		spec.Containers[0].Env = nil
		// A group's namespace exists once CreateGroup returns; the fetch
		// retries until the listener is there.
		runtimetest.Create(t, rt, spec)
		l, err := rt.Listen(spec.ID, "tcp", "127.0.0.1:7444")
		if err != nil {
			t.Fatalf("Listen: %v", err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "served by the host")
		})}
		go srv.Serve(l)
		defer srv.Close()
		runtimetest.WaitStatus(t, rt, spec.ID, "fetched", runtimetest.Terminated)
		if logs, _ := runtime.ReadLogs(ctx, rt, spec.ID, "web", runtime.LogOptions{}); string(logs) != "served by the host" {
			t.Errorf("container fetched %q", logs)
		}
		if _, err := rt.Listen("nosuchgroup", "tcp", "127.0.0.1:7444"); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("Listen in unknown group: %v", err)
		}
	})
}

func TestPullFailures(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	cfg := testConfig(t)
	rt := newTestRuntime(t, cfg)
	t.Cleanup(func() { cleanupRuntime(t, rt) })
	ctx := context.Background()

	missing := serveSpec(runtimetest.GroupID("missing"), host+"/berth/nope:v1", host, runtime.RestartNever)
	noCreds := serveSpec(runtimetest.GroupID("nocreds"), image, host, runtime.RestartNever)
	noCreds.Credentials = nil
	badCreds := serveSpec(runtimetest.GroupID("badcreds"), image, host, runtime.RestartNever)
	badCreds.Credentials[0].Password = "wrong"
	// The image is fine but the second container's is not.
	second := serveSpec(runtimetest.GroupID("second"), image, host, runtime.RestartNever)
	second.Containers = append(second.Containers, runtime.ContainerSpec{Name: "bad", Image: host + "/berth/nope:v2"})

	for _, spec := range []runtime.GroupSpec{missing, noCreds, badCreds, second} {
		_, err := rt.CreateGroup(ctx, spec)
		if !errors.Is(err, runtime.ErrImagePull) {
			t.Errorf("%s: err = %v, want ErrImagePull", spec.ID, err)
			continue
		}
		t.Logf("%s: %v", spec.ID, err)
	}
	assertNothingLeft(t, rt)

	// With the right credentials the same image pulls.
	ok := serveSpec(runtimetest.GroupID("ok"), image, host, runtime.RestartNever)
	runtimetest.Create(t, rt, ok)
}

// assertNothingLeft checks that rt holds no group: no namespace, no address,
// no record, no container.
func assertNothingLeft(t *testing.T, rt *Runtime) {
	t.Helper()
	for _, d := range []string{"netns", "groups"} {
		if entries, _ := os.ReadDir(filepath.Join(rt.cfg.DataDir, d)); len(entries) > 0 {
			t.Errorf("%s/ not empty: %v", d, entries)
		}
	}
	if ips := reservedIPs(t, rt); len(ips) > 0 {
		t.Errorf("addresses still reserved: %v", ips)
	}
	if conts, _ := rt.client.Containers(rt.nsctx(context.Background())); len(conts) > 0 {
		t.Errorf("%d containers left", len(conts))
	}
}

// reservedIPs lists host-local's reservations.
func reservedIPs(t *testing.T, rt *Runtime) []string {
	entries, _ := os.ReadDir(filepath.Join(rt.cfg.DataDir, "cni", "networks", rt.cfg.BridgeName))
	var ips []string
	for _, e := range entries {
		if n := e.Name(); strings.Count(n, ".") == 3 {
			ips = append(ips, n)
		}
	}
	return ips
}

func TestDeleteGroupRemovesEverything(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	rt := newTestRuntime(t, testConfig(t))
	t.Cleanup(func() { cleanupRuntime(t, rt) })
	ctx := context.Background()

	spec := serveSpec(runtimetest.GroupID("del"), image, host, runtime.RestartAlways)
	sleeper := []string{"/bin/sleep", "600"} // busybox as pid 1 ignores SIGTERM: SIGKILL it is
	if _, err := os.Stat("/bin/busybox"); err != nil {
		sleeper = []string{"/app", "sleep", "600"}
	}
	spec.Containers = append(spec.Containers, runtime.ContainerSpec{Name: "sleeper", Image: image, Command: sleeper})
	st, err := rt.CreateGroup(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitStatus(t, rt, spec.ID, "running", runtimetest.Running)
	var pids []int
	for _, c := range spec.Containers {
		pids = append(pids, taskPid(t, rt, spec.ID, c.Name))
	}
	if !netNSMounted(rt.netnsPath(spec.ID)) {
		t.Error("netns not mounted")
	}
	if ips := reservedIPs(t, rt); len(ips) != 1 || ips[0] != st.IP {
		t.Errorf("reserved = %v, want [%s]", ips, st.IP)
	}

	events, cancel := rt.Subscribe()
	defer cancel()
	if err := rt.DeleteGroup(ctx, spec.ID); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still there after delete (kill 0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(rt.netnsPath(spec.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns file: %v", err)
	}
	assertNothingLeft(t, rt)
	killing := 0
	for len(events) > 0 {
		if ev := <-events; ev.GroupID == spec.ID && ev.Kind == runtime.EventKilling {
			killing++
		}
	}
	if killing != 2 {
		t.Errorf("Killing events = %d, want 2", killing)
	}
}

func mustContainer(t *testing.T, rt *Runtime, group, name string) client.Container {
	t.Helper()
	c, err := rt.client.LoadContainer(rt.nsctx(context.Background()), containerID(group, name))
	if err != nil {
		t.Fatalf("load container %s/%s: %v", group, name, err)
	}
	return c
}

func taskPid(t *testing.T, rt *Runtime, group, name string) int {
	t.Helper()
	task, err := mustContainer(t, rt, group, name).Task(rt.nsctx(context.Background()), nil)
	if err != nil {
		t.Fatalf("task of %s/%s: %v", group, name, err)
	}
	return int(task.Pid())
}

// TestRestartReadopts stops a runtime (and its containerd) and starts a new
// one on the same data directory, as a berth restart does: a running group
// keeps running and is watched again; a container that exited while berth
// was down is restarted by its policy.
func TestRestartReadopts(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	cfg := testConfig(t)
	ctx := context.Background()

	rt := newTestRuntime(t, cfg)
	current := rt
	t.Cleanup(func() { cleanupRuntime(t, current) })

	stays := serveSpec(runtimetest.GroupID("stays"), image, host, runtime.RestartAlways)
	exits := serveSpec(runtimetest.GroupID("exits"), image, host, runtime.RestartOnFailure)
	var stIP, exIP string
	for _, spec := range []runtime.GroupSpec{stays, exits} {
		st, err := rt.CreateGroup(ctx, spec) // deleted by cleanupRuntime
		if err != nil {
			t.Fatal(err)
		}
		if spec.ID == stays.ID {
			stIP = st.IP
		} else {
			exIP = st.IP
		}
	}
	var env map[string]string
	getJSON(t, "http://"+stIP+":8080/", &env)
	getJSON(t, "http://"+exIP+":8080/", &env)
	pid := taskPid(t, rt, stays.ID, "web")

	if err := rt.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if answers(ctx, filepath.Join(cfg.DataDir, "containerd", "containerd.sock")) {
		t.Fatal("private containerd still answers after Close")
	}
	// berth and containerd are down; the containers are not.
	getJSON(t, "http://"+stIP+":8080/", &env)
	if _, err := get("http://" + exIP + ":8080/exit?code=3"); err != nil {
		t.Fatalf("ask the container to exit: %v", err)
	}
	for deadline := time.Now().Add(runtimetest.Timeout); ; time.Sleep(50 * time.Millisecond) {
		if _, err := get("http://" + exIP + ":8080/"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("container did not exit")
		}
	}

	rt2 := newTestRuntime(t, cfg)
	current = rt2
	st, err := rt2.Status(ctx, stays.ID)
	if err != nil || !runtimetest.Running(st) || st.IP != stIP {
		t.Fatalf("status after restart = %+v, %v", st, err)
	}
	st, err = rt2.Status(ctx, exits.ID)
	if c := st.Containers[0]; err != nil || c.Current.State != runtime.StateTerminated || c.Current.ExitCode != 3 {
		t.Fatalf("status of the exited group after restart = %+v, %v", st, err)
	}

	for _, spec := range []runtime.GroupSpec{stays, exits, stays} { // twice: idempotent
		if _, err := rt2.RecoverGroup(ctx, spec); err != nil {
			t.Fatalf("RecoverGroup(%s): %v", spec.ID, err)
		}
	}
	if p := taskPid(t, rt2, stays.ID, "web"); p != pid {
		t.Errorf("running container replaced: pid %d, was %d", p, pid)
	}
	st = runtimetest.WaitStatus(t, rt2, exits.ID, "restarted", func(st runtime.GroupStatus) bool {
		c := st.Containers[0]
		return c.RestartCount == 1 && c.Current.State == runtime.StateRunning
	})
	if p := st.Containers[0].Previous; p == nil || p.ExitCode != 3 {
		t.Errorf("previous state = %+v, want exit code 3", p)
	}
	if st.IP != exIP {
		t.Errorf("IP changed: %s, was %s", st.IP, exIP)
	}
	getJSON(t, "http://"+exIP+":8080/", &env)

	// The re-adopted running container is watched: its exit restarts it.
	if _, err := get("http://" + stIP + ":8080/exit?code=0"); err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitStatus(t, rt2, stays.ID, "restarted", func(st runtime.GroupStatus) bool {
		c := st.Containers[0]
		return c.RestartCount == 1 && c.Current.State == runtime.StateRunning
	})
	getJSON(t, "http://"+stIP+":8080/", &env)

	logs, err := runtime.ReadLogs(ctx, rt2, stays.ID, "web", runtime.LogOptions{})
	if err != nil || strings.Count(string(logs), "listening on :8080") != 2 {
		t.Errorf("logs across runs = %q, %v; want two runs", logs, err)
	}
}

// TestAdoptsRunningDaemon: a berth that died without Close left its
// containerd running; the next one uses it, and stops it on Close.
func TestAdoptsRunningDaemon(t *testing.T) {
	requireRoot(t)
	cfg := testConfig(t)
	first := newTestRuntime(t, cfg)
	second := newTestRuntime(t, cfg)
	if second.daemon.exited != nil || second.daemon.pid != first.daemon.pid {
		t.Errorf("second runtime started its own containerd (pid %d, first %d)", second.daemon.pid, first.daemon.pid)
	}
	cleanupRuntime(t, second)
	select {
	case <-first.daemon.exited:
	case <-time.After(runtimetest.Timeout):
		t.Error("the adopted containerd was not stopped by Close")
	}
	if err := first.Close(); err != nil {
		t.Errorf("closing the first runtime: %v", err)
	}
}

// TestRecoverAfterReboot simulates a host reboot: the tasks and the network
// namespace are gone, containerd's records are not. RecoverGroup recreates
// the sandbox and starts the container again.
func TestRecoverAfterReboot(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	rt := newTestRuntime(t, testConfig(t))
	t.Cleanup(func() { cleanupRuntime(t, rt) })
	ctx := context.Background()

	spec := serveSpec(runtimetest.GroupID("reboot"), image, host, runtime.RestartNever)
	runtimetest.Create(t, rt, spec)
	runtimetest.WaitStatus(t, rt, spec.ID, "running", runtimetest.Running)

	// "Reboot": stop watching, kill the task, drop the namespace mount.
	g, _ := rt.lockGroup(spec.ID)
	g.stopWatchers()
	g.op.Unlock()
	task, err := mustContainer(t, rt, spec.ID, "web").Task(rt.nsctx(ctx), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.stopTask(rt.nsctx(ctx), spec.ID, "web", task); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Unmount(rt.netnsPath(spec.ID), syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}

	st, err := rt.RecoverGroup(ctx, spec)
	if err != nil {
		t.Fatalf("RecoverGroup: %v", err)
	}
	if !netNSMounted(rt.netnsPath(spec.ID)) || st.IP == "" {
		t.Fatalf("sandbox not recreated: %+v", st)
	}
	st = runtimetest.WaitStatus(t, rt, spec.ID, "running again", runtimetest.Running)
	if st.Containers[0].RestartCount != 1 {
		t.Errorf("restart count = %d, want 1", st.Containers[0].RestartCount)
	}
	var env map[string]string
	getJSON(t, "http://"+st.IP+":8080/", &env)
	if ips := reservedIPs(t, rt); len(ips) != 1 || ips[0] != st.IP {
		t.Errorf("reserved = %v, want only [%s]", ips, st.IP)
	}
}

func nilLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// TestForwards checks that an address of the host answers at the same
// address inside a group (berth's registries use this), also after berth
// restarts while the group runs.
func TestForwards(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	var ready atomic.Bool
	hostSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "host service")
	}))
	defer hostSrv.Close()
	addr := strings.TrimPrefix(hostSrv.URL, "http://")
	cfg := testConfig(t)
	cfg.Forwards = []Forward{{Listen: addr, Target: addr}}
	rt := newTestRuntime(t, cfg)
	t.Cleanup(func() { cleanupRuntime(t, rt) })
	ctx := context.Background()

	// The container retries until the host service is ready.
	spec := serveSpec(runtimetest.GroupID("fwd"), image, host, runtime.RestartNever)
	spec.Containers[0].Command = []string{"/app", "fetch", hostSrv.URL + "/"}
	if _, err := rt.CreateGroup(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// berth restarts while the container runs; the forward comes back.
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	rt = newTestRuntime(t, cfg)
	if _, err := rt.RecoverGroup(ctx, spec); err != nil {
		t.Fatal(err)
	}
	ready.Store(true)
	st := runtimetest.WaitStatus(t, rt, spec.ID, "fetched", runtimetest.Terminated)
	if logs, _ := runtime.ReadLogs(ctx, rt, spec.ID, "web", runtime.LogOptions{}); st.Containers[0].Current.ExitCode != 0 || string(logs) != "host service" {
		t.Fatalf("container fetched %q through the forward (exit %d)", logs, st.Containers[0].Current.ExitCode)
	}
}

// TestAddForward checks that a forward added at run time reaches groups
// that are already running (a registry created after the group).
func TestAddForward(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	hostSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "added later")
	}))
	defer hostSrv.Close()
	addr := strings.TrimPrefix(hostSrv.URL, "http://")
	rt := newTestRuntime(t, testConfig(t))
	t.Cleanup(func() { cleanupRuntime(t, rt) })
	ctx := context.Background()

	spec := serveSpec(runtimetest.GroupID("addfwd"), image, host, runtime.RestartNever)
	spec.Containers[0].Command = []string{"/app", "fetch", hostSrv.URL + "/"}
	if _, err := rt.CreateGroup(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := rt.AddForward(Forward{Listen: addr, Target: addr}); err != nil {
		t.Fatal(err)
	}
	st := runtimetest.WaitStatus(t, rt, spec.ID, "fetched", runtimetest.Terminated)
	if logs, _ := runtime.ReadLogs(ctx, rt, spec.ID, "web", runtime.LogOptions{}); st.Containers[0].Current.ExitCode != 0 || string(logs) != "added later" {
		t.Fatalf("container fetched %q (exit %d)", logs, st.Containers[0].Current.ExitCode)
	}
	rt.RemoveForward(addr)
	// A new group no longer gets it: its fetch cannot connect.
	spec2 := serveSpec(runtimetest.GroupID("nofwd"), image, host, runtime.RestartNever)
	spec2.Containers[0].Command = []string{"/app", "status", hostSrv.URL + "/"}
	if _, err := rt.CreateGroup(ctx, spec2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if st, _ := rt.Status(ctx, spec2.ID); st.Containers[0].Current.State == runtime.StateTerminated && st.Containers[0].Current.ExitCode == 0 {
		t.Fatal("a removed forward still answered in a new group")
	}
}

// TestForwardYieldsToDeclaredPort: a container that declares a port a
// forward would take keeps it; the group still starts.
func TestForwardYieldsToDeclaredPort(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	cfg := testConfig(t)
	cfg.Forwards = []Forward{{Listen: "127.0.0.1:8080", Target: "127.0.0.1:1"}}
	rt := newTestRuntime(t, cfg)
	t.Cleanup(func() { cleanupRuntime(t, rt) })
	spec := serveSpec(runtimetest.GroupID("yield"), image, host, runtime.RestartAlways,
		runtime.EnvVar{Name: "MARK", Value: "container"})
	spec.Containers = append(spec.Containers, runtime.ContainerSpec{
		Name: "client", Image: image, Command: []string{"/app", "fetch", "http://127.0.0.1:8080/"},
	})
	spec.RestartPolicy = runtime.RestartNever
	runtimetest.Create(t, rt, spec)
	st := runtimetest.WaitStatus(t, rt, spec.ID, "client done", func(st runtime.GroupStatus) bool {
		return st.Containers[1].Current.State == runtime.StateTerminated
	})
	logs, _ := runtime.ReadLogs(context.Background(), rt, spec.ID, "client", runtime.LogOptions{})
	if st.Containers[1].Current.ExitCode != 0 || !strings.Contains(string(logs), `"MARK":"container"`) {
		t.Fatalf("client reached %q (exit %d), want the container's own service", logs, st.Containers[1].Current.ExitCode)
	}
}
