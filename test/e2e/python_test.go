package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// debianPython is Debian's interpreter, the one python3-azure installs
// into (the python3 first on PATH may be another one, without azure).
const debianPython = "/usr/bin/python3"

// pyContainer and pyGroup are what testdata/python/aci_flows.py reports of
// a container group, as the Python SDK deserialized it.
type pyContainer struct {
	Name         string            `json:"name"`
	Image        string            `json:"image"`
	Command      []string          `json:"command"`
	State        string            `json:"state"`
	ExitCode     *int              `json:"exit_code"`
	RestartCount *int              `json:"restart_count"`
	Events       []string          `json:"events"`
	CPU          float64           `json:"cpu"`
	MemoryInGB   float64           `json:"memory_in_gb"`
	Environment  map[string]string `json:"environment"`
}

type pyGroup struct {
	Name              string        `json:"name"`
	ID                string        `json:"id"`
	Location          string        `json:"location"`
	ProvisioningState string        `json:"provisioning_state"`
	State             string        `json:"state"`
	RestartPolicy     string        `json:"restart_policy"`
	IP                string        `json:"ip"`
	FQDN              string        `json:"fqdn"`
	DNSNameLabel      string        `json:"dns_name_label"`
	Ports             []int         `json:"ports"`
	Containers        []pyContainer `json:"containers"`
	Sidecar           string        `json:"sidecar"`
	SidecarLogs       string        `json:"sidecar_logs"`
	Logs              string        `json:"logs"`
	GroupEvents       []string      `json:"group_events"`
	RegistryServers   []string      `json:"registry_servers"`
	RegistryUsernames []string      `json:"registry_usernames"`
	RegistryPasswords []string      `json:"registry_passwords"`
}

// checkGroupCommon checks what every group of the flows has: the location,
// the registry credential without its password, and each container's image
// and requests as the flows sent them.
func checkGroupCommon(t *testing.T, b *berth, g pyGroup, image string, cpu, mem float64) {
	t.Helper()
	if g.Location != "eastus" {
		t.Errorf("%s: location %q", g.Name, g.Location)
	}
	if !reflect.DeepEqual(g.RegistryServers, []string{b.env["BERTH_REGISTRY"]}) ||
		!reflect.DeepEqual(g.RegistryUsernames, []string{b.env["AZURE_CLIENT_ID"]}) || len(g.RegistryPasswords) != 0 {
		t.Errorf("%s: registry credentials as returned: servers %v users %v, %d passwords (want none)",
			g.Name, g.RegistryServers, g.RegistryUsernames, len(g.RegistryPasswords))
	}
	for _, c := range g.Containers {
		if c.Image != image || c.CPU != cpu || c.MemoryInGB != mem {
			t.Errorf("%s/%s: image %s cpu %v memory %v GB, want %s %v %v", g.Name, c.Name, c.Image, c.CPU, c.MemoryInGB, image, cpu, mem)
		}
	}
}

type pyList struct {
	ByResourceGroup []string `json:"by_resource_group"`
	BySubscription  []string `json:"by_subscription"`
}

type pyDelete struct {
	GetAfterDelete           map[string]string `json:"get_after_delete"`
	Left                     []string          `json:"left"`
	ResourceGroupAfterDelete string            `json:"resource_group_after_delete"`
}

type pyRequest struct {
	Method     string `json:"method"`
	Host       string `json:"host"`
	Path       string `json:"path"`
	APIVersion string `json:"api_version"`
	Status     int    `json:"status"`
}

// requirePythonAzure fails (never skips) when Debian's python3-azure is not
// there, saying how to get it.
func requirePythonAzure(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(debianPython); err != nil {
		t.Fatalf("%s is missing (%v): run `make deps`, which installs Debian's python3-azure", debianPython, err)
	}
	out, err := exec.Command(debianPython, "-c",
		"import azure.identity, azure.mgmt.resource, azure.mgmt.containerinstance as aci, azure.mgmt.containerinstance._version as v; "+
			"print('azure-mgmt-containerinstance', v.VERSION, 'azure-identity', azure.identity.__version__)").CombinedOutput()
	if err != nil {
		t.Fatalf("%s cannot import the Azure SDK (%v): run `make deps`, which installs Debian's python3-azure\n%s", debianPython, err, out)
	}
	t.Logf("%s: %s", debianPython, strings.TrimSpace(string(out)))
}

// pythonCommand runs debianPython with args, in this process's environment
// and berth's (what `berth env` prints).
func pythonCommand(ctx context.Context, b *berth, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, debianPython, args...)
	cmd.Env = os.Environ()
	for k, v := range b.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// denyProxy is an HTTP(S) proxy that refuses and records every request: the
// Python program gets it as HTTPS_PROXY, so any call it tried to make
// anywhere but berth (instance discovery, telemetry) shows up here.
type denyProxy struct {
	URL string
	mu  sync.Mutex
	got []string
}

func startDenyProxy(t *testing.T) *denyProxy {
	t.Helper()
	p := &denyProxy{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.got = append(p.got, r.Method+" "+r.Host+r.URL.Path)
		p.mu.Unlock()
		http.Error(w, "berth e2e: no traffic beyond berth", http.StatusForbidden)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p.URL = "http://" + ln.Addr().String()
	return p
}

func (p *denyProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

// pyRun is the running Python program: its RESULT lines by step.
type pyRun struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string
	out     bytes.Buffer // everything it printed, for failure messages
	mu      sync.Mutex
	results map[string]json.RawMessage
	done    chan error
	proxy   *denyProxy
}

func startPythonFlows(t *testing.T, ctx context.Context, b *berth, proxy *denyProxy, script string, extra map[string]string) *pyRun {
	t.Helper()
	cmd := exec.CommandContext(ctx, debianPython, script)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "PYTHONPATH", "PYTHONHOME", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY":
			continue // another interpreter's paths; the proxies are set below
		}
		cmd.Env = append(cmd.Env, kv)
	}
	for k, v := range b.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		cmd.Env = append(cmd.Env, k+"="+proxy.URL)
	}
	cmd.Env = append(cmd.Env, "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost", "HOME="+t.TempDir())
	r := &pyRun{t: t, cmd: cmd, lines: make(chan string, 64), results: map[string]json.RawMessage{}, done: make(chan error, 1), proxy: proxy}
	var err error
	if r.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &lockedWriter{mu: &r.mu, w: &r.out}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			line := sc.Text()
			r.mu.Lock()
			r.out.WriteString(line + "\n")
			if js, ok := strings.CutPrefix(line, "RESULT "); ok {
				var head struct{ Step string }
				if json.Unmarshal([]byte(js), &head) == nil {
					r.results[head.Step] = json.RawMessage(js)
				}
			}
			r.mu.Unlock()
			r.lines <- line
		}
		close(r.lines)
		r.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() }) // a no-op once it has exited
	return r
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (r *pyRun) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// until waits for a line equal to want; it fails if the program ends first.
func (r *pyRun) until(want string) {
	r.t.Helper()
	for line := range r.lines {
		if line == want {
			return
		}
	}
	err := <-r.done
	r.done <- err
	r.t.Fatalf("the Python flows ended (%v) before printing %s (calls beyond berth: %v):\n%s", err, want, r.proxy.requests(), r.output())
}

// finish lets the program go on (the sample's "Press ENTER to delete") and
// waits for it to exit successfully.
func (r *pyRun) finish() {
	r.t.Helper()
	_, _ = io.WriteString(r.stdin, "\n")
	r.stdin.Close()
	for range r.lines {
	}
	if err := <-r.done; err != nil {
		r.t.Fatalf("the Python flows failed: %v (calls beyond berth: %v)\n%s", err, r.proxy.requests(), r.output())
	}
	if !strings.HasSuffix(r.output(), "OK\n") {
		r.t.Fatalf("the Python flows did not end with OK:\n%s", r.output())
	}
}

// result decodes the RESULT line of step into v.
func (r *pyRun) result(step string, v any) {
	r.t.Helper()
	r.mu.Lock()
	raw, ok := r.results[step]
	r.mu.Unlock()
	if !ok {
		r.t.Fatalf("the Python flows reported no %q result:\n%s", step, r.output())
	}
	if err := json.Unmarshal(raw, v); err != nil {
		r.t.Fatalf("%s result: %v\n%s", step, err, raw)
	}
}

// logLines splits container logs into trimmed, non-empty lines.
func logLines(s string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out[l] = true
		}
	}
	return out
}

// TestPythonSDKFlows runs the ACI management library's documented Python
// flows (testdata/python/aci_flows.py) with Debian's python3-azure against
// the real berth binary, then checks from Go that what they created really
// runs: the single-container group answers HTTP on its address, the
// sidecar reached its neighbour over the group's localhost, the task ran its
// command with its variables, and delete removes it all.
func TestPythonSDKFlows(t *testing.T) {
	requirePythonAzure(t)
	b := startBerth(t)
	s := newSDK(t, b)
	image := pushTestImage(t, b, "python/app:v1")
	proxy := startDenyProxy(t)
	ctx := ctxT(t, 10*time.Minute)
	const rg = "python-flows"

	run := startPythonFlows(t, ctx, b, proxy, filepath.Join("testdata", "python", "aci_flows.py"), map[string]string{
		"BERTH_PY_IMAGE":          image,
		"BERTH_PY_RESOURCE_GROUP": rg,
		"BERTH_PY_LOCATION":       "eastus",
	})
	run.until("READY-TO-DELETE")

	// Single container: Running, with an address that answers from the host.
	var single pyGroup
	run.result("single", &single)
	if single.Name != "aci-py" || single.ProvisioningState != "Succeeded" || single.State != "Running" || single.Location != "eastus" {
		t.Fatalf("single-container group as Python saw it: %+v", single)
	}
	if len(single.Containers) != 1 || single.Containers[0].State != "Running" || single.Containers[0].Image != image {
		t.Fatalf("single-container group's container: %+v", single.Containers)
	}
	if want := "aci-py.eastus.azurecontainer.io"; single.DNSNameLabel != "aci-py" || single.FQDN != want {
		t.Errorf("single-container group: dnsNameLabel %q fqdn %q, want aci-py and %s", single.DNSNameLabel, single.FQDN, want)
	}
	checkGroupCommon(t, b, single, image, 1, 1)
	if !reflect.DeepEqual(single.Ports, []int{8080}) {
		t.Errorf("single-container group's ports: %v", single.Ports)
	}
	env, err := waitEnv(t, single.IP)
	if err != nil {
		t.Fatalf("HTTP to the single-container group at %s: %v", single.IP, err)
	}
	if env["PATH"] != "/bin" {
		t.Fatalf("the single-container group answered %v, not the test image's environment", env)
	}
	g, err := s.cgs.Get(ctx, rg, "aci-py", nil)
	if err != nil {
		t.Fatalf("Go SDK GET of the Python-made group: %v", err)
	}
	if *g.Properties.IPAddress.IP != single.IP || *g.Properties.InstanceView.State != "Running" {
		t.Fatalf("Go SDK sees ip %s state %s; Python saw %s Running", *g.Properties.IPAddress.IP, *g.Properties.InstanceView.State, single.IP)
	}

	// Sidecar: the second container fetched the first over localhost; what it
	// got is what the host gets from the group's address.
	var multi pyGroup
	run.result("multi", &multi)
	if multi.Name != "aci-py-multi" || multi.State != "Running" || len(multi.Containers) != 2 || multi.Sidecar != "aci-py-multi-2" {
		t.Fatalf("multi-container group as Python saw it: %+v", multi)
	}
	checkGroupCommon(t, b, multi, image, 1, 2)
	var fromSidecar map[string]string
	if err := json.Unmarshal([]byte(strings.TrimSpace(multi.SidecarLogs)), &fromSidecar); err != nil {
		t.Fatalf("the sidecar's logs are not the app's answer: %v\n%q", err, multi.SidecarLogs)
	}
	fromHost, err := waitEnv(t, multi.IP)
	if err != nil {
		t.Fatalf("HTTP to the multi-container group at %s: %v", multi.IP, err)
	}
	if !reflect.DeepEqual(fromSidecar, fromHost) {
		t.Fatalf("the sidecar got %v over localhost; the host got %v from %s", fromSidecar, fromHost, multi.IP)
	}
	goLogs, err := s.ctrs.ListLogs(ctx, rg, "aci-py-multi", "aci-py-multi-2", nil)
	if err != nil || goLogs.Content == nil || strings.TrimSpace(*goLogs.Content) != strings.TrimSpace(multi.SidecarLogs) {
		t.Fatalf("Go SDK logs of the sidecar: %v %v; Python got %q", err, goLogs.Content, multi.SidecarLogs)
	}

	// Task: ran to completion once, with its command and its variables.
	var task pyGroup
	run.result("task", &task)
	if task.Name != "aci-py-task" || task.ProvisioningState != "Succeeded" || task.State != "Succeeded" || task.RestartPolicy != "Never" {
		t.Fatalf("task group as Python saw it: %+v", task)
	}
	if len(task.Containers) != 1 {
		t.Fatalf("task containers: %+v", task.Containers)
	}
	checkGroupCommon(t, b, task, image, 1, 1)
	if want := map[string]string{"NumWords": "5", "MinLength": "8"}; !reflect.DeepEqual(task.Containers[0].Environment, want) {
		t.Errorf("task environment variables as returned: %v, want %v", task.Containers[0].Environment, want)
	}
	tc := task.Containers[0]
	if tc.State != "Terminated" || tc.ExitCode == nil || *tc.ExitCode != 0 || tc.RestartCount == nil || *tc.RestartCount != 0 {
		t.Fatalf("task container: %+v", tc)
	}
	if want := []string{"/bin/sh", "-c", "echo FOO BAR && /app print-env"}; !reflect.DeepEqual(tc.Command, want) {
		t.Errorf("task command as returned: %q, want %q", tc.Command, want)
	}
	lines := logLines(task.Logs)
	for _, want := range []string{"FOO BAR", "NumWords=5", "MinLength=8", "PATH=/bin"} {
		if !lines[want] {
			t.Errorf("task logs lack %q:\n%s", want, task.Logs)
		}
	}
	goLogs, err = s.ctrs.ListLogs(ctx, rg, "aci-py-task", "aci-py-task", nil)
	if err != nil || goLogs.Content == nil || *goLogs.Content != task.Logs {
		t.Errorf("Go SDK logs of the task: %v %v; Python got %q", err, goLogs.Content, task.Logs)
	}

	// list / list_by_resource_group, and get with the instance view.
	var list pyList
	run.result("list", &list)
	want := []string{"aci-py", "aci-py-multi", "aci-py-task"}
	if !reflect.DeepEqual(list.ByResourceGroup, want) || !reflect.DeepEqual(list.BySubscription, want) {
		t.Errorf("lists: by resource group %v, by subscription %v, want %v", list.ByResourceGroup, list.BySubscription, want)
	}
	var got pyGroup
	run.result("get", &got)
	if got.Name != "aci-py-multi" || got.IP != multi.IP || len(got.Containers) != 2 {
		t.Fatalf("get: %+v", got)
	}
	checkGroupCommon(t, b, got, image, 1, 2)
	for i, c := range got.Containers {
		if c.Name != want[1]+"-"+string(rune('1'+i)) || c.Image != image || c.State != "Running" {
			t.Errorf("get: container %d: %+v", i, c)
		}
		if !contains(c.Events, "Started") {
			t.Errorf("get: container %s events %v lack Started", c.Name, c.Events)
		}
	}

	// Delete (the program goes on once told to, like the sample's prompt).
	run.finish()
	t.Logf("the Python flows printed:\n%s", run.output())
	var del pyDelete
	run.result("delete", &del)
	for _, n := range want {
		if del.GetAfterDelete[n] != "ResourceNotFound" {
			t.Errorf("Python get after delete of %s: %q", n, del.GetAfterDelete[n])
		}
	}
	if len(del.Left) != 0 || del.ResourceGroupAfterDelete != "ResourceGroupNotFound" {
		t.Errorf("after delete: groups left %v, resource group get %q", del.Left, del.ResourceGroupAfterDelete)
	}
	for _, ip := range []string{single.IP, multi.IP} {
		if _, err := getEnv(t, ip); err == nil {
			t.Errorf("the deleted group's address %s still answers", ip)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(b.dataDir, "runtime", "netns")); len(entries) != 0 {
		t.Errorf("network namespaces left after delete: %v", entries)
	}
	if _, err := s.groups.Get(ctx, rg, nil); respCode(err) != "ResourceGroupNotFound" {
		t.Errorf("Go SDK: resource group after the Python delete: %v", err)
	}

	// Every call went to berth, with the api-versions this SDK sends.
	var reqs struct {
		Requests []pyRequest `json:"requests"`
	}
	run.result("requests", &reqs)
	checkPythonRequests(t, b, reqs.Requests)
	if got := proxy.requests(); len(got) != 0 {
		t.Errorf("the Python SDK tried to reach beyond berth: %v", got)
	}
}

// checkPythonRequests checks the responses the Python clients got: all from
// berth, ACI at 2022-10-01-preview (azure-mgmt-containerinstance 10.1.0b1),
// resource groups at 2022-09-01 (azure-mgmt-resource 22.0.0), and the
// statuses ARM gives.
func checkPythonRequests(t *testing.T, b *berth, reqs []pyRequest) {
	t.Helper()
	if len(reqs) == 0 {
		t.Fatal("no requests recorded")
	}
	puts := 0
	for _, r := range reqs {
		if r.Host != b.addr {
			t.Errorf("request to %s, not berth (%s): %+v", r.Host, b.addr, r)
		}
		p := strings.ToLower(r.Path)
		switch {
		case strings.Contains(p, "/providers/microsoft.containerinstance/containergroups"):
			if r.APIVersion != "2022-10-01-preview" {
				t.Errorf("ACI request with api-version %q: %+v", r.APIVersion, r)
			}
			if r.Method == "PUT" {
				puts++
				if r.Status != 200 && r.Status != 201 {
					t.Errorf("PUT answered %d: %+v", r.Status, r)
				}
			}
			if r.Method == "DELETE" && r.Status != 200 && r.Status != 202 && r.Status != 204 {
				t.Errorf("DELETE answered %d: %+v", r.Status, r)
			}
		case strings.Contains(p, "/providers/microsoft.containerinstance/"):
			// ACI's own operation-status URLs (berth's Azure-AsyncOperation).
		case strings.Contains(p, "/resourcegroups/"):
			if r.APIVersion != "2022-09-01" {
				t.Errorf("resource group request with api-version %q: %+v", r.APIVersion, r)
			}
		}
		// The only refusals the flows meet are the GETs after the deletes.
		if r.Status >= 400 && !(r.Method == "GET" && r.Status == http.StatusNotFound) {
			t.Errorf("berth answered %d: %+v", r.Status, r)
		}
	}
	if puts != 3 {
		t.Errorf("%d container group PUTs, want 3", puts)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
