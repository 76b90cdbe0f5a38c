// Command density measures how many idle container groups berth runs at
// once and what they cost, through ARM as the SDK drives it:
//
//  1. create -n groups (PUT, then the Azure-AsyncOperation polled at the
//     Retry-After-Ms berth sends, as the SDK's pollers do) from -clients
//     concurrent clients: creates/s and p50/p95 per create;
//
//  2. with all of them running: berth's RSS (VmRSS of its process), its
//     containerd's, and the host memory used per group (the drop in
//     MemAvailable since before the first create, divided by -n);
//
//  3. stop all (POST …/stop), start all (POST …/start, polled), delete all,
//     each with its rate;
//
//  4. the floor, in the same run on the same containerd: `ctr run -d` of
//     -floor containers of the same image and command (no network, no
//     berth), their rate from -clients workers and memory per container.
//
//     go run ./bench/density [-n 2000] [-clients 8] [-floor 200]
//
// Bounds seen on a 2-core host: with the SDK's polling at berth's
// Retry-After-Ms (250 ms) a create that takes longer than one interval is
// seen at the second poll, so 8 clients see at most about 16 creates/s
// unless creates finish within 250 ms; and runc reads the host's whole
// mount table (every container's rootfs and every group's namespace) several
// times per container, so creates, stops and starts slow down as groups add
// up.
//
// Needs root (it starts berth, which starts containerd). It raises
// kernel.pid_max (each group is a shim and a process with their threads;
// 32768 pids do not hold 2,000 groups) and the neighbour-table thresholds
// for the run and puts them back at the end; berth gets its own bridge,
// subnet and data directory, and everything is deleted at the end, on
// failure too.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berth-dev/berth/bench/internal/berthrun"
	"github.com/berth-dev/berth/internal/testutil/hostnet"
	"github.com/berth-dev/berth/internal/testutil/testimage"
)

func main() {
	n := flag.Int("n", 2000, "idle groups")
	clients := flag.Int("clients", 8, "concurrent clients")
	floor := flag.Int("floor", -1, "containers for the ctr run floor (default n/10; 0 skips it)")
	subnet := flag.String("subnet", "10.218.0.0/16", "berth's default subnet for the run")
	bridge := flag.String("bridge", "berthdens", "berth's first bridge for the run")
	flag.Parse()
	if *floor < 0 {
		*floor = *n / 10
	}
	if err := run(*n, *clients, *floor, *subnet, *bridge); err != nil {
		fmt.Fprintln(os.Stderr, "density:", err)
		os.Exit(1)
	}
}

type env map[string]string

// sysctls raised for the run (and put back), as "path": value.
var sysctls = map[string]int{
	"/proc/sys/kernel/pid_max":                    4194304,
	"/proc/sys/net/ipv4/neigh/default/gc_thresh1": 2048,
	"/proc/sys/net/ipv4/neigh/default/gc_thresh2": 8192,
	"/proc/sys/net/ipv4/neigh/default/gc_thresh3": 16384,
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.Fields(string(b))[0])
}

// raiseLimits raises what is below sysctls' values and returns how to put
// them back.
func raiseLimits() func() {
	var undo []func()
	for path, want := range sysctls {
		have, err := readInt(path)
		if err != nil || have >= want {
			continue
		}
		if err := os.WriteFile(path, []byte(strconv.Itoa(want)), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "density: raise %s: %v\n", path, err)
			continue
		}
		fmt.Printf("raised %s from %d to %d for the run\n", strings.TrimPrefix(path, "/proc/sys/"), have, want)
		undo = append(undo, func() { os.WriteFile(path, []byte(strconv.Itoa(have)), 0o644) })
	}
	return func() {
		for _, u := range undo {
			u()
		}
	}
}

func run(n, clients, floor int, subnet, bridge string) error {
	defer raiseLimits()()
	b, err := berthrun.Start("berth-density-", "--bridge", bridge, "--subnet", subnet,
		"--quota-container-groups", strconv.Itoa(n+10), "--quota-cores", strconv.Itoa(n+10))
	if err != nil {
		hostnet.RemoveBridge(bridge)
		return err
	}
	defer b.Remove()
	srv, data, sock, e := b.Cmd, b.Data, b.ContainerdSocket(), env(b.Env)
	var a *api
	defer cleanup(&a, srv, data, sock, bridge, b.LogPath)
	client := &http.Client{Timeout: 2 * time.Minute, Transport: b.Transport(clients*2, true)}

	img, err := testimage.Image()
	if err != nil {
		return err
	}
	ref := e["BERTH_REGISTRY"] + "/bench/app:v1"
	if _, err := testimage.PushImage(img, ref, &authn.Basic{Username: e["AZURE_CLIENT_ID"], Password: e["AZURE_CLIENT_SECRET"]}, client.Transport); err != nil {
		return err
	}
	tok, err := berthrun.Token(client, e)
	if err != nil {
		return err
	}
	a = &api{c: client, e: e, tok: tok, image: ref}
	if err := a.do("PUT", "/subscriptions/"+e["AZURE_SUBSCRIPTION_ID"]+"/resourcegroups/bench?api-version=2021-04-01", `{"location":"local"}`, nil); err != nil {
		return err
	}
	// Warm-up: the first create pulls the image.
	if _, err := a.create("warm"); err != nil {
		return err
	}
	if _, err := a.delete("warm"); err != nil {
		return err
	}
	pid := srv.Process.Pid
	cpid := containerdPid(data)
	time.Sleep(2 * time.Second)
	memBefore := memAvailable()
	rssBefore := status(pid, "VmRSS")
	fmt.Printf("density: %d idle groups (the test app sleeping, 0.1 CPU / 0.1 GB each), %d clients, %d CPUs, %.1f GiB RAM\n",
		n, clients, numCPU(), float64(memTotal())/(1<<30))
	fmt.Printf("  before: berth RSS %s, MemAvailable %.1f GiB\n", mib(rssBefore), float64(memBefore)/(1<<30))

	names := make([]string, n)
	for i := range names {
		names[i] = "d" + strconv.Itoa(i)
	}
	// 1. create.
	lat, el, err := parallel(names, clients, a.create)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	fmt.Printf("  create %d: %.1f s, %.1f creates/s; per create p50 %v p95 %v\n", n, el.Seconds(), float64(n)/el.Seconds(),
		pct(lat, 50), pct(lat, 95))
	time.Sleep(5 * time.Second)
	memRun := memAvailable()
	fmt.Printf("  all running: berth RSS %s (peak %s, %s threads), containerd RSS %s; host memory used %.2f GiB = %s per group\n",
		mib(status(pid, "VmRSS")), mib(status(pid, "VmHWM")), status(pid, "Threads"), mib(status(cpid, "VmRSS")),
		float64(memBefore-memRun)/(1<<30), mib(int((memBefore-memRun)/int64(n))>>10))
	bs, _ := filepath.Glob(filepath.Join(data, "runtime", "shards", "*.json"))
	fmt.Printf("  default network bridges: %d (%s and %d more)\n", len(bs)+1, bridge, len(bs))
	if err := a.sample(names); err != nil {
		return err
	}

	// 2. stop, start.
	_, el, err = parallel(names, clients, a.stop)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	time.Sleep(2 * time.Second)
	fmt.Printf("  stop %d: %.1f s, %.1f stops/s; host memory used while stopped %s per group; berth RSS %s\n", n, el.Seconds(), float64(n)/el.Seconds(),
		mib(int((memBefore-memAvailable())/int64(n))>>10), mib(status(pid, "VmRSS")))
	lat, el, err = parallel(names, clients, a.start)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	fmt.Printf("  start %d: %.1f s, %.1f starts/s; per start p50 %v p95 %v; berth RSS %s (peak %s)\n", n, el.Seconds(), float64(n)/el.Seconds(),
		pct(lat, 50), pct(lat, 95), mib(status(pid, "VmRSS")), mib(status(pid, "VmHWM")))
	if err := a.sample(names); err != nil {
		return err
	}

	// 3. delete.
	_, el, err = parallel(names, clients, a.delete)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	fmt.Printf("  delete %d: %.1f s, %.1f deletes/s; berth RSS after %s\n", n, el.Seconds(), float64(n)/el.Seconds(), mib(status(pid, "VmRSS")))

	// 4. the floor.
	if floor > 0 {
		time.Sleep(2 * time.Second)
		if err := ctrFloor(sock, ref, floor, clients); err != nil {
			return fmt.Errorf("floor: %w", err)
		}
	}
	return nil
}

const floorNS = "densityfloor"

// ctrFloor runs floor containers with `ctr run -d` (same image and command)
// and reports their rate and memory.
func ctrFloor(sock, ref string, floor, clients int) error {
	ctr := func(args ...string) error {
		out, err := exec.Command("ctr", append([]string{"-a", sock, "-n", floorNS}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr %v: %v: %s", args, err, out)
		}
		return nil
	}
	// The image is in berth's namespace; copy it into the floor's.
	exp := exec.Command("sh", "-c", fmt.Sprintf("ctr -a %s -n berth image export - %s | ctr -a %s -n %s image import -", sock, ref, sock, floorNS))
	if out, err := exp.CombinedOutput(); err != nil {
		return fmt.Errorf("image into the floor namespace: %v: %s", err, out)
	}
	if err := ctr("run", "-d", ref, "floor-warm", "/app", "sleep", "1000000"); err != nil {
		return err
	}
	floorRemove(sock, []string{"floor-warm"})
	ids := make([]string, floor)
	for i := range ids {
		ids[i] = "floor-" + strconv.Itoa(i)
	}
	defer floorRemove(sock, ids)
	time.Sleep(time.Second)
	before := memAvailable()
	_, el, err := parallel(ids, clients, func(id string) (time.Duration, error) {
		t0 := time.Now()
		err := ctr("run", "-d", "--memory-limit", strconv.Itoa(100<<20), ref, id, "/app", "sleep", "1000000")
		return time.Since(t0), err
	})
	if err != nil {
		return err
	}
	time.Sleep(5 * time.Second)
	used := before - memAvailable()
	fmt.Printf("  floor (ctr run -d, same image and command, no network): %d containers in %.1f s, %.1f/s from %d workers; %s per container\n",
		floor, el.Seconds(), float64(floor)/el.Seconds(), clients, mib(int(used/int64(floor))>>10))
	return nil
}

func floorRemove(sock string, ids []string) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c := func(args ...string) {
				exec.Command("ctr", append([]string{"-a", sock, "-n", floorNS}, args...)...).Run()
			}
			c("task", "kill", "-s", "SIGKILL", id)
			for range 50 {
				if exec.Command("ctr", "-a", sock, "-n", floorNS, "task", "rm", "-f", id).Run() == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			c("container", "rm", id)
		}()
	}
	wg.Wait()
}

// cleanup deletes every group left, stops berth, kills what is left of its
// containers, and removes its bridges and firewall chain.
func cleanup(ap **api, srv *exec.Cmd, data, sock, bridge, logPath string) {
	if a := *ap; a != nil {
		var left []string
		var lst struct {
			Value []struct {
				Name string `json:"name"`
			} `json:"value"`
			NextLink string `json:"nextLink"`
		}
		path := "/subscriptions/" + a.e["AZURE_SUBSCRIPTION_ID"] + "/resourceGroups/bench/providers/Microsoft.ContainerInstance/containerGroups?api-version=2023-05-01"
		for path != "" {
			lst.NextLink = ""
			if err := a.do("GET", path, "", &lst); err != nil {
				break
			}
			for _, g := range lst.Value {
				left = append(left, g.Name)
			}
			path = lst.NextLink
		}
		if len(left) > 0 {
			fmt.Printf("cleanup: deleting %d groups left\n", len(left))
			parallel(left, 8, a.delete)
		}
	}
	// Whatever containerd still runs (a failed delete, the floor).
	for _, ns := range []string{"berth", floorNS} {
		out, _ := exec.Command("ctr", "-a", sock, "-n", ns, "task", "ls", "-q").Output()
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			fmt.Printf("cleanup: killing %d tasks in %s\n", len(ids), ns)
			floorKill(sock, ns, ids)
		}
	}
	srv.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		srv.Process.Kill()
		<-done
	}
	// containerd outlives berth only if berth could not stop it.
	if pid := containerdPid(data); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// Mounts under the data directory (namespaces, rootfs, tmpfs).
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	lines := strings.Split(string(mounts), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if f := strings.Fields(lines[i]); len(f) > 4 && strings.HasPrefix(f[4], data) {
			syscall.Unmount(f[4], syscall.MNT_DETACH)
		}
	}
	bridges := []string{bridge}
	shards, _ := filepath.Glob(filepath.Join(data, "runtime", "shards", "*.json"))
	for _, s := range shards {
		bridges = append(bridges, strings.TrimSuffix(filepath.Base(s), ".json"))
	}
	for _, b := range bridges {
		hostnet.RemoveBridge(b) // the default bridge's chains with it
	}
	if b, err := os.ReadFile(logPath); err == nil {
		kept := filepath.Join(os.TempDir(), "berth-density-last.log")
		if os.WriteFile(kept, b, 0o600) == nil {
			fmt.Printf("berth's log: %s\n", kept)
		}
		if warn := grepLines(b, "level=WARN", "level=ERROR"); warn != "" {
			fmt.Printf("berth warnings and errors (first 20):\n%s", warn)
		}
	}
}

func floorKill(sock, ns string, ids []string) {
	for _, id := range ids {
		exec.Command("ctr", "-a", sock, "-n", ns, "task", "kill", "-s", "SIGKILL", id).Run()
	}
	time.Sleep(time.Second)
	for _, id := range ids {
		exec.Command("ctr", "-a", sock, "-n", ns, "task", "rm", "-f", id).Run()
		exec.Command("ctr", "-a", sock, "-n", ns, "container", "rm", id).Run()
	}
}

func grepLines(b []byte, subs ...string) string {
	var out strings.Builder
	k := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && k < 20 {
		for _, s := range subs {
			if strings.Contains(sc.Text(), s) {
				out.WriteString("  " + sc.Text() + "\n")
				k++
				break
			}
		}
	}
	return out.String()
}

// parallel runs f on every name from workers goroutines, returning each
// call's duration, the wall time and the first error (after which the rest
// is skipped).
func parallel(names []string, workers int, f func(string) (time.Duration, error)) ([]time.Duration, time.Duration, error) {
	var (
		next  atomic.Int64
		mu    sync.Mutex
		lat   []time.Duration
		first error
		wg    sync.WaitGroup
		done  atomic.Int64
	)
	t0 := time.Now()
	stop := make(chan struct{})
	go func() { // progress, for long runs
		for {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Second):
				fmt.Printf("    … %d/%d after %.0f s\n", done.Load(), len(names), time.Since(t0).Seconds())
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(names) {
					return
				}
				mu.Lock()
				failed := first != nil
				mu.Unlock()
				if failed {
					return
				}
				d, err := f(names[i])
				done.Add(1)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	return lat, time.Since(t0), first
}

type api struct {
	c     *http.Client
	e     env
	tok   string
	image string
}

func (a *api) do(method, path, body string, out any) error {
	_, err := a.doHeader(method, path, body, out)
	return err
}

func (a *api) doHeader(method, path, body string, out any) (http.Header, error) {
	u := path
	if !strings.HasPrefix(u, "https://") {
		u = a.e["BERTH_ENDPOINT"] + path
	}
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil && len(b) > 0 {
		return resp.Header, json.Unmarshal(b, out)
	}
	return resp.Header, nil
}

func (a *api) base(name string) string {
	return "/subscriptions/" + a.e["AZURE_SUBSCRIPTION_ID"] + "/resourceGroups/bench/providers/Microsoft.ContainerInstance/containerGroups/" + name
}

const apiVersion = "?api-version=2023-05-01"

// create PUTs an idle group and waits for its operation.
func (a *api) create(name string) (time.Duration, error) {
	body := fmt.Sprintf(`{"location":"local","properties":{"osType":"Linux","restartPolicy":"Always",
	 "containers":[{"name":"idle","properties":{"image":%q,"command":["/app","sleep","1000000"],"resources":{"requests":{"cpu":0.1,"memoryInGB":0.1}}}}],
	 "imageRegistryCredentials":[{"server":%q,"username":%q,"password":%q}]}}`,
		a.image, a.e["BERTH_REGISTRY"], a.e["AZURE_CLIENT_ID"], a.e["AZURE_CLIENT_SECRET"])
	t0 := time.Now()
	h, err := a.doHeader("PUT", a.base(name)+apiVersion, body, nil)
	if err != nil {
		return 0, err
	}
	return a.wait(name, t0, h)
}

// wait polls the Azure-AsyncOperation in h at the Retry-After-Ms it asks
// for, as the SDK's pollers do.
func (a *api) wait(name string, t0 time.Time, h http.Header) (time.Duration, error) {
	op := h.Get("Azure-AsyncOperation")
	if op == "" {
		return time.Since(t0), nil
	}
	every := 250 * time.Millisecond
	if ms, err := strconv.Atoi(h.Get("Retry-After-Ms")); err == nil && ms > 0 {
		every = time.Duration(ms) * time.Millisecond
	}
	for {
		time.Sleep(every)
		var st struct {
			Status string
			Error  json.RawMessage
		}
		if err := a.do("GET", op, "", &st); err != nil {
			return 0, err
		}
		switch st.Status {
		case "Succeeded":
			return time.Since(t0), nil
		case "Pending", "InProgress", "Running", "":
		default:
			return 0, fmt.Errorf("group %s: operation %s %s", name, st.Status, st.Error)
		}
		if time.Since(t0) > 5*time.Minute {
			return 0, fmt.Errorf("group %s: operation still %s after 5 min", name, st.Status)
		}
	}
}

func (a *api) stop(name string) (time.Duration, error) {
	t0 := time.Now()
	err := a.do("POST", a.base(name)+"/stop"+apiVersion, "", nil)
	return time.Since(t0), err
}

func (a *api) start(name string) (time.Duration, error) {
	t0 := time.Now()
	h, err := a.doHeader("POST", a.base(name)+"/start"+apiVersion, "", nil)
	if err != nil {
		return 0, err
	}
	return a.wait(name, t0, h)
}

func (a *api) delete(name string) (time.Duration, error) {
	t0 := time.Now()
	err := a.do("DELETE", a.base(name)+apiVersion, "", nil)
	return time.Since(t0), err
}

// sample GETs a few groups and checks they report Running.
func (a *api) sample(names []string) error {
	for _, i := range []int{0, len(names) / 2, len(names) - 1} {
		var g struct {
			Properties struct {
				InstanceView struct {
					State string `json:"state"`
				} `json:"instanceView"`
			} `json:"properties"`
		}
		if err := a.do("GET", a.base(names[i])+apiVersion, "", &g); err != nil {
			return err
		}
		if s := g.Properties.InstanceView.State; s != "Running" {
			return fmt.Errorf("group %s: state %q", names[i], s)
		}
	}
	return nil
}

// status returns a field of /proc/<pid>/status ("" if unknown); sizes are
// in kB.
func status(pid int, field string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return strings.TrimSuffix(strings.TrimSpace(v), " kB")
		}
	}
	return ""
}

// mib renders kB (a string or an int) in MiB.
func mib(kb any) string {
	var k int
	switch v := kb.(type) {
	case string:
		k, _ = strconv.Atoi(v)
	case int:
		k = v
	}
	return fmt.Sprintf("%.1f MiB", float64(k)/1024)
}

func meminfo(field string) int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n << 10
		}
	}
	return 0
}

func memAvailable() int64 { return meminfo("MemAvailable") }
func memTotal() int64     { return meminfo("MemTotal") }

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func containerdPid(data string) int {
	b, err := os.ReadFile(filepath.Join(data, "runtime", "containerd", "containerd.pid"))
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return p
}

func pct(ds []time.Duration, p int) time.Duration {
	return berthrun.Percentile(ds, p).Round(time.Millisecond)
}
