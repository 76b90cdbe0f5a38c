package containerd

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/runtimetest"
)

// Tests of what only a real kernel shows: the cgroup view, OOM kills,
// tmpfs secrets, seccomp, capabilities, git clones, resolv.conf, GPU
// refusal, credentials resolved at pull time.

// usableGPUs is how many GPUs this host can give a container.
func usableGPUs() int {
	if g := HostGPUs(); g.CDI {
		return g.Count
	}
	return 0
}

// coreEnv starts a runtime for the tests of this file.
func coreEnv(t *testing.T, edit func(*Config)) (*Runtime, runtimetest.Env) {
	t.Helper()
	requireRoot(t)
	host, image, _ := registryEnv(t)
	cfg := testConfig(t)
	if edit != nil {
		edit(&cfg)
	}
	rt := newTestRuntime(t, cfg)
	t.Cleanup(func() { cleanupRuntime(t, rt) })
	return rt, runtimetest.Env{Runtime: rt, Image: image, Credentials: creds(host), MissingImage: host + "/berth/notthere:v1"}
}

// runDone creates spec and waits until every container has terminated.
func runDone(t *testing.T, rt *Runtime, spec runtime.GroupSpec) runtime.GroupStatus {
	t.Helper()
	runtimetest.Create(t, rt, spec)
	return runtimetest.WaitStatus(t, rt, spec.ID, "all terminated", runtimetest.AllTerminated)
}

func statusOf(t *testing.T, st runtime.GroupStatus, name string) runtime.ContainerStatus {
	t.Helper()
	for _, c := range st.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s in %+v", name, st)
	return runtime.ContainerStatus{}
}

func ptr[T any](v T) *T { return &v }

// assertGroupGone checks that nothing of group id is left: record,
// namespace, containers, address.
func assertGroupGone(t *testing.T, rt *Runtime, id string) {
	t.Helper()
	for _, p := range []string{rt.groupDir(id), rt.netnsPath(id)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is left", p)
		}
	}
	results, _ := os.ReadDir(filepath.Join(rt.cfg.DataDir, "cni", "cache", "results"))
	for _, e := range results {
		if strings.Contains(e.Name(), id) {
			t.Errorf("CNI result %s is left (address held)", e.Name())
		}
	}
	if conts, _ := rt.client.Containers(rt.nsctx(context.Background()), groupFilter(id)); len(conts) > 0 {
		t.Errorf("%d containers of %s left", len(conts), id)
	}
	if _, err := rt.Status(context.Background(), id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Status(%s) = %v, want ErrNotFound", id, err)
	}
}

// TestCgroupView: a container sees its own memory limit and CPU quota under
// /sys/fs/cgroup, read-only.
func TestCgroupView(t *testing.T) {
	rt, e := coreEnv(t, nil)
	memFile, cpuFile := "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"
	wantMem, wantCPU := "134217728", "50000"
	if cgroupV2() {
		memFile, cpuFile, wantCPU = "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/cpu.max", "50000 100000"
	}
	spec := e.Spec(runtimetest.GroupID("cgview"), runtime.RestartNever, "read", memFile)
	spec.Containers = append(spec.Containers,
		e.App("cpu", "read", cpuFile),
		e.App("writer", "write", memFile, "1"),
		e.App("privileged", "write", memFile, "268435456"))
	for i := range spec.Containers {
		spec.Containers[i].CPU, spec.Containers[i].MemoryBytes = 0.5, 128<<20
	}
	spec.Containers[3].Security = &runtime.SecurityContext{Privileged: ptr(true)}
	st := runDone(t, rt, spec)
	if got := strings.TrimSpace(runtimetest.Logs(t, rt, spec.ID, "main")); got != wantMem {
		t.Errorf("%s inside = %q, want %s (exit %d)", memFile, got, wantMem, statusOf(t, st, "main").Current.ExitCode)
	}
	if got := strings.TrimSpace(runtimetest.Logs(t, rt, spec.ID, "cpu")); got != wantCPU {
		t.Errorf("%s inside = %q, want %s", cpuFile, got, wantCPU)
	}
	if c := statusOf(t, st, "writer"); c.Current.ExitCode == 0 {
		t.Errorf("a container wrote its own memory limit: %q", runtimetest.Logs(t, rt, spec.ID, "writer"))
	} else {
		t.Logf("writer: %s", runtimetest.Logs(t, rt, spec.ID, "writer"))
	}
	if c := statusOf(t, st, "privileged"); c.Current.ExitCode != 0 {
		t.Errorf("a privileged container could not write its cgroup: %q", runtimetest.Logs(t, rt, spec.ID, "privileged"))
	}
}

// TestOOMKilled: a container going over its memory limit is killed, reported
// Terminated with exit code 137 and detail OOMKilled, and restarted as its
// policy says.
func TestOOMKilled(t *testing.T) {
	rt, e := coreEnv(t, nil)
	never := e.Spec(runtimetest.GroupID("oom"), runtime.RestartNever, "alloc", "256")
	never.Containers[0].MemoryBytes = 32 << 20
	fits := e.App("fits", "alloc", "8")
	fits.MemoryBytes = 64 << 20
	never.Containers = append(never.Containers, fits)
	st := runDone(t, rt, never)
	if c := statusOf(t, st, "main").Current; c.ExitCode != 137 || c.DetailStatus != "OOMKilled" {
		t.Errorf("over the limit: %+v, logs %q", c, runtimetest.Logs(t, rt, never.ID, "main"))
	}
	if c := statusOf(t, st, "fits").Current; c.ExitCode != 0 || c.DetailStatus != "Completed" {
		t.Errorf("within the limit: %+v", c)
	}

	again := e.Spec(runtimetest.GroupID("oomagain"), runtime.RestartOnFailure, "alloc", "256")
	again.Containers[0].MemoryBytes = 32 << 20
	runtimetest.Create(t, rt, again)
	st = runtimetest.WaitStatus(t, rt, again.ID, "restarted after an OOM kill", func(st runtime.GroupStatus) bool {
		return st.Containers[0].RestartCount >= 1
	})
	if p := st.Containers[0].Previous; p == nil || p.ExitCode != 137 || p.DetailStatus != "OOMKilled" {
		t.Errorf("previous state = %+v, want OOMKilled 137", p)
	}
}

// TestSecretTmpfs: a secret volume is a tmpfs of its own, its files 0400 and
// its directory 0500, owned by the mounting container's user; it is
// recreated by RecoverGroup after a reboot and unmounted by DeleteGroup.
func TestSecretTmpfs(t *testing.T) {
	rt, e := coreEnv(t, nil)
	ctx := context.Background()
	spec := e.Spec(runtimetest.GroupID("tmpfs"), runtime.RestartNever, "stat", "/s/key")
	spec.Volumes = []runtime.VolumeSpec{{Name: "sec", Kind: runtime.VolumeSecret, Files: map[string][]byte{"key": []byte("v1")}}}
	spec.Containers[0].Mounts = []runtime.Mount{{Volume: "sec", Path: "/s"}}
	spec.Containers[0].Security = &runtime.SecurityContext{RunAsUser: ptr[int64](1000), RunAsGroup: ptr[int64](2000)}
	dir := e.App("dir", "stat", "/s")
	dir.Mounts = spec.Containers[0].Mounts
	other := e.App("other", "read", "/s/key") // another non-root user: no access
	other.Mounts = spec.Containers[0].Mounts
	other.Security = &runtime.SecurityContext{RunAsUser: ptr[int64](3000)}
	spec.Containers = append(spec.Containers, dir, other)
	st := runDone(t, rt, spec)
	if got := runtimetest.Logs(t, rt, spec.ID, "main"); got != "mode=0400 uid=1000 gid=2000\n" {
		t.Errorf("secret file: %q", got)
	}
	if got := runtimetest.Logs(t, rt, spec.ID, "dir"); got != "mode=0500 uid=1000 gid=2000\n" {
		t.Errorf("secret directory: %q", got)
	}
	if c := statusOf(t, st, "other"); c.Current.ExitCode == 0 {
		t.Error("another user read the secret")
	}

	hostDir := rt.secretDir(spec.ID, "sec")
	var fs syscall.Statfs_t
	if err := syscall.Statfs(hostDir, &fs); err != nil || fs.Type != 0x01021994 { // TMPFS_MAGIC
		t.Errorf("secret volume on the host: statfs type %#x, err %v; want tmpfs", fs.Type, err)
	}
	if fi, err := os.Stat(filepath.Join(hostDir, "key")); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("host file: %v, %v", fi, err)
	}

	// "Reboot": the tmpfs goes; RecoverGroup brings it back.
	if err := syscall.Unmount(hostDir, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RecoverGroup(ctx, spec); err != nil {
		t.Fatalf("RecoverGroup: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(hostDir, "key")); err != nil || string(b) != "v1" || !isMountPoint(hostDir) {
		t.Errorf("after recovery: %q, %v, mounted %v", b, err, isMountPoint(hostDir))
	}

	if err := rt.DeleteGroup(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(hostDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("secret directory after delete: %v", err)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), spec.ID) {
		t.Errorf("a mount of the group is left")
	}
}

// procStatus runs a container reading /proc/self/status and returns the
// named fields.
func procStatus(t *testing.T, rt *Runtime, e runtimetest.Env, sc *runtime.SecurityContext) map[string]string {
	t.Helper()
	spec := e.Spec(runtimetest.GroupID("proc"), runtime.RestartNever, "read", "/proc/self/status")
	spec.Containers[0].Security = sc
	st := runDone(t, rt, spec)
	if c := st.Containers[0].Current; c.ExitCode != 0 {
		t.Fatalf("reading /proc/self/status: %+v, %q", c, runtimetest.Logs(t, rt, spec.ID, "main"))
	}
	fields := map[string]string{}
	for _, line := range strings.Split(runtimetest.Logs(t, rt, spec.ID, "main"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields
}

func capMask(t *testing.T, hex string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		t.Fatalf("capability mask %q: %v", hex, err)
	}
	return n
}

// TestCapabilitiesAndPrivileges: capability add/drop (with and without the
// CAP_ prefix, ALL), allowPrivilegeEscalation, privileged, the default
// seccomp filter, as the kernel reports them in /proc/self/status.
func TestCapabilitiesAndPrivileges(t *testing.T) {
	rt, e := coreEnv(t, nil)
	const netAdmin, netRaw, sysAdmin = 1 << 12, 1 << 13, 1 << 21

	def := procStatus(t, rt, e, nil)
	if m := capMask(t, def["CapEff"]); m&netRaw == 0 || m&sysAdmin != 0 || m&netAdmin != 0 {
		t.Errorf("default CapEff %s: want NET_RAW, no SYS_ADMIN or NET_ADMIN", def["CapEff"])
	}
	if def["Seccomp"] != "2" || def["NoNewPrivs"] != "1" {
		t.Errorf("default: Seccomp %s NoNewPrivs %s, want 2 and 1", def["Seccomp"], def["NoNewPrivs"])
	}

	only := procStatus(t, rt, e, &runtime.SecurityContext{
		CapabilitiesDrop: []string{"ALL"}, CapabilitiesAdd: []string{"net_admin"}, AllowPrivilegeEscalation: ptr(true)})
	if m := capMask(t, only["CapEff"]); m != netAdmin || capMask(t, only["CapBnd"]) != netAdmin {
		t.Errorf("drop ALL add NET_ADMIN: CapEff %s CapBnd %s, want %x", only["CapEff"], only["CapBnd"], netAdmin)
	}
	if only["NoNewPrivs"] != "0" {
		t.Errorf("allowPrivilegeEscalation true: NoNewPrivs %s", only["NoNewPrivs"])
	}

	dropped := procStatus(t, rt, e, &runtime.SecurityContext{CapabilitiesDrop: []string{"CAP_NET_RAW"}, AllowPrivilegeEscalation: ptr(false)})
	if m := capMask(t, dropped["CapEff"]); m&netRaw != 0 || m == 0 {
		t.Errorf("drop CAP_NET_RAW: CapEff %s", dropped["CapEff"])
	}
	if dropped["NoNewPrivs"] != "1" {
		t.Errorf("allowPrivilegeEscalation false: NoNewPrivs %s", dropped["NoNewPrivs"])
	}

	priv := procStatus(t, rt, e, &runtime.SecurityContext{Privileged: ptr(true)})
	if m := capMask(t, priv["CapEff"]); m&sysAdmin == 0 || m&netAdmin == 0 {
		t.Errorf("privileged CapEff %s: want every capability", priv["CapEff"])
	}
	if priv["Seccomp"] != "0" {
		t.Errorf("privileged: Seccomp %s, want 0 (no filter)", priv["Seccomp"])
	}

	for _, bad := range [][]string{{"NOT_A_CAP"}, {"CAP_"}} {
		spec := e.Spec(runtimetest.GroupID("badcap"), runtime.RestartNever)
		spec.Containers[0].Security = &runtime.SecurityContext{CapabilitiesAdd: bad}
		if _, err := rt.CreateGroup(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "capability") {
			t.Errorf("capability %v: err = %v", bad, err)
		}
		assertGroupGone(t, rt, spec.ID)
	}
}

// TestSeccompProfile: a profile given as ACI takes it (base64 of its JSON)
// is the container's filter; a bad one is refused before anything is made.
func TestSeccompProfile(t *testing.T) {
	rt, e := coreEnv(t, nil)
	profile := `{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]},{"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]}],` +
		`"syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`
	spec := e.Spec(runtimetest.GroupID("seccomp"), runtime.RestartNever, "mkdir", "/tmp/denied")
	spec.Containers[0].Security = &runtime.SecurityContext{SeccompProfile: base64.StdEncoding.EncodeToString([]byte(profile))}
	spec.Containers = append(spec.Containers, e.App("free", "mkdir", "/tmp/allowed"))
	st := runDone(t, rt, spec)
	if c := statusOf(t, st, "main"); c.Current.ExitCode == 0 || !strings.Contains(runtimetest.Logs(t, rt, spec.ID, "main"), "operation not permitted") {
		t.Errorf("mkdir under the profile: exit %d, %q", c.Current.ExitCode, runtimetest.Logs(t, rt, spec.ID, "main"))
	}
	if c := statusOf(t, st, "free"); c.Current.ExitCode != 0 {
		t.Errorf("mkdir without the profile: %q", runtimetest.Logs(t, rt, spec.ID, "free"))
	}

	for _, bad := range []string{
		"!!not base64",
		base64.StdEncoding.EncodeToString([]byte("not json")),
		base64.StdEncoding.EncodeToString([]byte(`{"syscalls":[]}`)),
		base64.StdEncoding.EncodeToString([]byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_MAYBE"}]}`)),
	} {
		spec := e.Spec(runtimetest.GroupID("badseccomp"), runtime.RestartNever)
		spec.Containers[0].Security = &runtime.SecurityContext{SeccompProfile: bad}
		_, err := rt.CreateGroup(context.Background(), spec)
		if err == nil || !strings.Contains(err.Error(), "seccompProfile") {
			t.Errorf("profile %q: err = %v", bad, err)
		}
		assertGroupGone(t, rt, spec.ID)
	}
}

// gitRepo makes a repository with two commits (tag v1 on the first) and
// returns its file:// URL.
func gitRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "file.txt"), []byte("first"), 0o644)
	git("add", "file.txt")
	git("commit", "-q", "-m", "one")
	git("tag", "v1")
	os.WriteFile(filepath.Join(dir, "file.txt"), []byte("second"), 0o644)
	git("commit", "-q", "-am", "two")
	return "file://" + dir
}

// TestGitRepoVolume: a repository is cloned at a revision into a directory
// of the volume before the containers start; a clone that fails fails the
// create with ErrVolume and a FailedMount event, leaving nothing.
func TestGitRepoVolume(t *testing.T) {
	rt, e := coreEnv(t, nil)
	url := gitRepo(t)
	spec := e.Spec(runtimetest.GroupID("git"), runtime.RestartNever, "read", "/repo/src/file.txt")
	spec.Volumes = []runtime.VolumeSpec{
		{Name: "code", Kind: runtime.VolumeGitRepo, GitRepo: &runtime.GitRepoSpec{Repository: url, Directory: "src", Revision: "v1"}},
		{Name: "head", Kind: runtime.VolumeGitRepo, GitRepo: &runtime.GitRepoSpec{Repository: url}},
	}
	spec.Containers[0].Mounts = []runtime.Mount{{Volume: "code", Path: "/repo"}}
	head := e.App("head", "read", "/h/file.txt")
	head.Mounts = []runtime.Mount{{Volume: "head", Path: "/h"}}
	spec.Containers = append(spec.Containers, head)
	runDone(t, rt, spec)
	if got := runtimetest.Logs(t, rt, spec.ID, "main"); got != "first" {
		t.Errorf("clone at v1 into src: %q", got)
	}
	if got := runtimetest.Logs(t, rt, spec.ID, "head"); got != "second" {
		t.Errorf("clone of the default branch: %q", got)
	}
	if err := rt.DeleteGroup(context.Background(), spec.ID); err != nil {
		t.Fatal(err)
	}

	events, cancel := rt.Subscribe()
	defer cancel()
	for _, v := range []runtime.GitRepoSpec{
		{Repository: "file:///nonexistent/repo.git"},
		{Repository: url, Revision: "no-such-revision"},
	} {
		bad := e.Spec(runtimetest.GroupID("badgit"), runtime.RestartNever)
		bad.Volumes = []runtime.VolumeSpec{{Name: "code", Kind: runtime.VolumeGitRepo, GitRepo: &v}}
		bad.Containers[0].Mounts = []runtime.Mount{{Volume: "code", Path: "/repo"}}
		_, err := rt.CreateGroup(context.Background(), bad)
		if !errors.Is(err, runtime.ErrVolume) || !strings.Contains(err.Error(), `"code"`) {
			t.Errorf("%+v: err = %v, want ErrVolume naming the volume", v, err)
		}
		var failed *runtime.Event
		for _, ev := range runtimetest.Drain(events, bad.ID) {
			if ev.Kind == runtime.EventFailedMount {
				failed = &ev
			}
		}
		if failed == nil || !failed.Warning || !strings.Contains(failed.Message, `"code"`) || failed.Container != "main" {
			t.Errorf("%+v: FailedMount event = %+v", v, failed)
		}
		assertNothingLeft(t, rt)
	}

	refused := e.Spec(runtimetest.GroupID("gitscheme"), runtime.RestartNever)
	refused.Volumes = []runtime.VolumeSpec{{Name: "code", Kind: runtime.VolumeGitRepo, GitRepo: &runtime.GitRepoSpec{Repository: "ext::sh -c touch% /tmp/pwned"}}}
	if _, err := rt.CreateGroup(context.Background(), refused); err == nil {
		t.Error("an ext:: repository was accepted")
	}
}

// TestResolvConf: a group's DNS settings become its /etc/resolv.conf; without
// them, Config.DefaultDNS's for the group's network.
func TestResolvConf(t *testing.T) {
	var asked []string
	rt, e := coreEnv(t, func(c *Config) {
		c.DefaultDNS = func(network string, _ netip.Addr) runtime.DNSSpec {
			asked = append(asked, network)
			return runtime.DNSSpec{Nameservers: []string{"10.214.0.1"}, Search: []string{"berth.internal"}}
		}
	})
	own := e.Spec(runtimetest.GroupID("dns"), runtime.RestartNever, "read", "/etc/resolv.conf")
	own.DNS = &runtime.DNSSpec{Nameservers: []string{"10.0.0.10", "10.0.0.11"}, Search: []string{"a.example", "b.example"}, Options: []string{"ndots:2"}}
	runDone(t, rt, own)
	got := runtimetest.Logs(t, rt, own.ID, "main")
	for _, want := range []string{"nameserver 10.0.0.10\nnameserver 10.0.0.11\n", "search a.example b.example\n", "options ndots:2\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("resolv.conf %q lacks %q", got, want)
		}
	}

	def := e.Spec(runtimetest.GroupID("dnsdef"), runtime.RestartNever, "read", "/etc/resolv.conf")
	// A volume over /etc does not hide the group's resolv.conf.
	def.Volumes = []runtime.VolumeSpec{{Name: "etc", Kind: runtime.VolumeEmptyDir}}
	def.Containers[0].Mounts = []runtime.Mount{{Volume: "etc", Path: "/etc"}}
	def.Containers = append(def.Containers, e.App("writer", "write", "/etc/resolv.conf", "nameserver 1.2.3.4"))
	st := runDone(t, rt, def)
	if got := runtimetest.Logs(t, rt, def.ID, "main"); !strings.Contains(got, "nameserver 10.214.0.1\nsearch berth.internal\n") {
		t.Errorf("default resolv.conf = %q", got)
	}
	if statusOf(t, st, "writer").Current.ExitCode == 0 {
		t.Error("a container wrote /etc/resolv.conf")
	}
	if len(asked) != 1 || asked[0] != "" {
		t.Errorf("DefaultDNS asked for %q, want once for the default network", asked)
	}

	bad := e.Spec(runtimetest.GroupID("baddns"), runtime.RestartNever)
	bad.DNS = &runtime.DNSSpec{Nameservers: []string{"not-an-ip"}}
	if _, err := rt.CreateGroup(context.Background(), bad); err == nil {
		t.Error("a nameserver that is not an address was accepted")
	}
}

// TestHostDNS: loopback resolvers are dropped (they do not answer inside a
// group's namespace), and systemd-resolved's upstream list is used when
// nothing else is left.
func TestHostDNS(t *testing.T) {
	dir := t.TempDir()
	stub, upstream := filepath.Join(dir, "stub"), filepath.Join(dir, "upstream")
	os.WriteFile(stub, []byte("# stub\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0 trust-ad\nsearch corp.example\n"), 0o644)
	os.WriteFile(upstream, []byte("nameserver 192.0.2.53\nnameserver 2001:db8::53\n"), 0o644)
	saved := hostResolvConfs
	defer func() { hostResolvConfs = saved }()

	hostResolvConfs = []string{stub, upstream}
	d := HostDNS()
	if fmt.Sprint(d.Nameservers) != "[192.0.2.53 2001:db8::53]" || fmt.Sprint(d.Search) != "[corp.example]" || fmt.Sprint(d.Options) != "[edns0 trust-ad]" {
		t.Errorf("stub resolver: %+v", d)
	}
	hostResolvConfs = []string{stub}
	if d := HostDNS(); len(d.Nameservers) != 0 || fmt.Sprint(d.Search) != "[corp.example]" {
		t.Errorf("only loopback resolvers: %+v", d)
	}
	hostResolvConfs = []string{upstream, stub}
	if d := HostDNS(); len(d.Nameservers) != 2 {
		t.Errorf("plain resolv.conf: %+v", d)
	}
}

// TestGPURefuse: with GPU mode refuse, a group asking for more GPUs than the
// host has fails with ErrUnsupported and leaves nothing.
func TestGPURefuse(t *testing.T) {
	rt, e := coreEnv(t, func(c *Config) { c.GPU = GPURefuse })
	spec := e.Spec(runtimetest.GroupID("gpurefuse"), runtime.RestartNever, "echo", "hi")
	spec.Containers[0].GPUs = usableGPUs() + 1
	if _, err := rt.CreateGroup(context.Background(), spec); !errors.Is(err, runtime.ErrUnsupported) {
		t.Errorf("err = %v, want ErrUnsupported", err)
	}
	assertNothingLeft(t, rt)
	if _, err := New(context.Background(), Config{DataDir: t.TempDir(), GPU: "sometimes"}); err == nil {
		t.Error("an unknown GPU mode was accepted")
	}
}

// TestDetectGPUs reads the driver's files and CDI specifications under a
// made-up root.
func TestDetectGPUs(t *testing.T) {
	root := t.TempDir()
	if g := detectGPUs(root); g.Count != 0 || g.CDI || g.Usable(1) {
		t.Errorf("empty host: %+v", g)
	}
	for i, model := range []string{"Tesla V100-SXM2-16GB", "Tesla T4"} {
		d := filepath.Join(root, "proc/driver/nvidia/gpus", fmt.Sprintf("0000:00:%02d.0", i+4))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "information"), []byte("Model: \t\t "+model+"\nIRQ:  33\n"), 0o644)
	}
	g := detectGPUs(root)
	if g.Count != 2 || g.Models[0] != "Tesla V100-SXM2-16GB" || g.Models[1] != "Tesla T4" || g.CDI || g.Usable(1) {
		t.Errorf("driver without CDI: %+v", g)
	}
	os.MkdirAll(filepath.Join(root, "etc/cdi"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/cdi/other.yaml"), []byte("cdiVersion: 0.5.0\nkind: example.com/fpga\n"), 0o644)
	if detectGPUs(root).CDI {
		t.Error("another vendor's CDI spec counted")
	}
	os.WriteFile(filepath.Join(root, "etc/cdi/nvidia.yaml"), []byte("---\ncdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n"), 0o644)
	if g := detectGPUs(root); !g.CDI || !g.Usable(2) || g.Usable(3) {
		t.Errorf("with CDI: %+v", g)
	}

	devOnly := t.TempDir()
	os.MkdirAll(filepath.Join(devOnly, "dev"), 0o755)
	for _, n := range []string{"nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"} {
		os.WriteFile(filepath.Join(devOnly, "dev", n), nil, 0o644)
	}
	os.MkdirAll(filepath.Join(devOnly, "var/run/cdi"), 0o755)
	os.WriteFile(filepath.Join(devOnly, "var/run/cdi/nvidia.json"), []byte(`{"cdiVersion":"0.6.0","kind":"nvidia.com/gpu","devices":[]}`), 0o644)
	if g := detectGPUs(devOnly); g.Count != 2 || !g.CDI {
		t.Errorf("device nodes and a JSON CDI spec: %+v", g)
	}
}

// TestResolveCredential: the credential callback is asked at every pull
// with the registry host, and its answer authenticates the pull; its
// failure fails the pull.
func TestResolveCredential(t *testing.T) {
	rt, e := coreEnv(t, nil)
	host := e.Credentials[0].Server
	var asked []string
	spec := e.Spec(runtimetest.GroupID("resolve"), runtime.RestartNever, "echo", "pulled")
	spec.Credentials = nil
	spec.InitContainers = []runtime.ContainerSpec{e.App("init", "echo", "init")}
	spec.ResolveCredential = func(ctx context.Context, h string) (runtime.RegistryCredential, bool, error) {
		asked = append(asked, h)
		return runtime.RegistryCredential{Username: regUser, Password: regPass}, true, nil
	}
	runDone(t, rt, spec)
	if len(asked) != 2 || asked[0] != host || asked[1] != host {
		t.Errorf("ResolveCredential asked for %v, want %s twice (one per pull)", asked, host)
	}
	if _, err := rt.RestartGroup(context.Background(), spec); err != nil {
		t.Fatalf("RestartGroup: %v", err)
	}
	if len(asked) != 4 {
		t.Errorf("ResolveCredential asked %d times after a restart, want 4", len(asked))
	}

	failing := e.Spec(runtimetest.GroupID("resolvefail"), runtime.RestartNever)
	failing.Credentials = nil
	failing.ResolveCredential = func(ctx context.Context, h string) (runtime.RegistryCredential, bool, error) {
		return runtime.RegistryCredential{}, false, errors.New("identity has no token")
	}
	if _, err := rt.CreateGroup(context.Background(), failing); !errors.Is(err, runtime.ErrImagePull) || !strings.Contains(err.Error(), "identity has no token") {
		t.Errorf("failing resolver: err = %v", err)
	}
	none := e.Spec(runtimetest.GroupID("resolvenone"), runtime.RestartNever, "echo", "static")
	none.ResolveCredential = func(ctx context.Context, h string) (runtime.RegistryCredential, bool, error) {
		return runtime.RegistryCredential{}, false, nil
	}
	runDone(t, rt, none) // falls back to the static credentials
}

// TestInitContainersNotRerunOnRecovery: a berth restarted after the group's
// containers started does not run its init containers again; one restarted
// while they were pending does.
func TestInitContainersNotRerunOnRecovery(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	cfg := testConfig(t)
	ctx := context.Background()
	rt := newTestRuntime(t, cfg)
	current := rt
	t.Cleanup(func() { cleanupRuntime(t, current) })
	e := runtimetest.Env{Runtime: rt, Image: image, Credentials: creds(host)}

	spec := e.Spec(runtimetest.GroupID("initrec"), runtime.RestartAlways)
	spec.InitContainers = []runtime.ContainerSpec{e.App("setup", "echo", "setup ran")}
	if _, err := rt.CreateGroup(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	rt2 := newTestRuntime(t, cfg)
	current = rt2
	st, err := rt2.RecoverGroup(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(runtimetest.Logs(t, rt2, spec.ID, "setup"), "setup ran"); n != 1 {
		t.Errorf("init container ran %d times", n)
	}
	if c := st.InitContainers[0].Current; c.State != runtime.StateTerminated || c.ExitCode != 0 {
		t.Errorf("init container after recovery: %+v", c)
	}

	// Pending: as if berth stopped between the init containers and the
	// containers.
	pending := e.Spec(runtimetest.GroupID("initpend"), runtime.RestartAlways)
	pending.InitContainers = spec.InitContainers
	rec := newRecord(pending)
	if err := rt2.writeRecord(rec, true); err != nil {
		t.Fatal(err)
	}
	if err := rt2.setupSandbox(rt2.nsctx(ctx), rec); err != nil {
		t.Fatal(err)
	}
	st, err = rt2.RecoverGroup(ctx, pending)
	if err != nil {
		t.Fatalf("RecoverGroup: %v", err)
	}
	if c := st.InitContainers[0].Current; c.State != runtime.StateTerminated || c.ExitCode != 0 {
		t.Errorf("pending init container after recovery: %+v", c)
	}
	runtimetest.WaitStatus(t, rt2, pending.ID, "running", runtimetest.Running)
	if r, _ := rt2.readRecord(pending.ID); r.InitPending {
		t.Error("record still says the init containers are pending")
	}
}

// TestValidateCore: bad volumes, mounts, DNS and security contexts are
// refused by validateSpec with a message naming what is wrong.
func TestValidateCore(t *testing.T) {
	base := func() runtime.GroupSpec {
		return runtime.GroupSpec{ID: "v", Containers: []runtime.ContainerSpec{{Name: "c", Image: "r/i:1"}}}
	}
	cases := map[string]func(*runtime.GroupSpec){
		"duplicate volume": func(s *runtime.GroupSpec) {
			s.Volumes = []runtime.VolumeSpec{{Name: "a", Kind: runtime.VolumeEmptyDir}, {Name: "a", Kind: runtime.VolumeEmptyDir}}
		},
		"unknown kind": func(s *runtime.GroupSpec) { s.Volumes = []runtime.VolumeSpec{{Name: "a", Kind: "Tape"}} },
		"secret file name": func(s *runtime.GroupSpec) {
			s.Volumes = []runtime.VolumeSpec{{Name: "a", Kind: runtime.VolumeSecret, Files: map[string][]byte{"../x": nil}}}
		},
		"share without account": func(s *runtime.GroupSpec) {
			s.Volumes = []runtime.VolumeSpec{{Name: "a", Kind: runtime.VolumeShare, Share: &runtime.ShareSpec{Name: "x"}}}
		},
		"git directory escapes": func(s *runtime.GroupSpec) {
			s.Volumes = []runtime.VolumeSpec{{Name: "a", Kind: runtime.VolumeGitRepo, GitRepo: &runtime.GitRepoSpec{Repository: "file:///r", Directory: "../x"}}}
		},
		"git option revision": func(s *runtime.GroupSpec) {
			s.Volumes = []runtime.VolumeSpec{{Name: "a", Kind: runtime.VolumeGitRepo, GitRepo: &runtime.GitRepoSpec{Repository: "file:///r", Revision: "--upload-pack=x"}}}
		},
		"relative mount": func(s *runtime.GroupSpec) {
			s.Volumes = []runtime.VolumeSpec{{Name: "a", Kind: runtime.VolumeEmptyDir}}
			s.Containers[0].Mounts = []runtime.Mount{{Volume: "a", Path: "data"}}
		},
		"mount over resolv.conf": func(s *runtime.GroupSpec) {
			s.Volumes = []runtime.VolumeSpec{{Name: "a", Kind: runtime.VolumeEmptyDir}}
			s.Containers[0].Mounts = []runtime.Mount{{Volume: "a", Path: "/etc/resolv.conf"}}
		},
		"init mounts unknown": func(s *runtime.GroupSpec) {
			s.InitContainers = []runtime.ContainerSpec{{Name: "i", Image: "r/i:1", Mounts: []runtime.Mount{{Volume: "x", Path: "/x"}}}}
		},
		"init name clash": func(s *runtime.GroupSpec) {
			s.InitContainers = []runtime.ContainerSpec{{Name: "c", Image: "r/i:1"}}
		},
		"dns option injection": func(s *runtime.GroupSpec) { s.DNS = &runtime.DNSSpec{Options: []string{"ndots:1\nnameserver 1.1.1.1"}} },
		"runAsUser negative": func(s *runtime.GroupSpec) {
			s.Containers[0].Security = &runtime.SecurityContext{RunAsUser: ptr[int64](-1)}
		},
	}
	for name, edit := range cases {
		spec := base()
		edit(&spec)
		if err := validateSpec(spec); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	ok := base()
	ok.Volumes = []runtime.VolumeSpec{{Name: "a", Kind: runtime.VolumeEmptyDir}}
	ok.Containers[0].Mounts = []runtime.Mount{{Volume: "a", Path: "/data/"}}
	ok.Containers[0].Security = &runtime.SecurityContext{CapabilitiesAdd: []string{"CAP_SYS_TIME", "net_admin", "ALL"}, CapabilitiesDrop: []string{"all"}}
	if err := validateSpec(ok); err != nil {
		t.Errorf("valid spec refused: %v", err)
	}
	if a, b := escapeName("My.Share/..", true), escapeName("my.share/..", true); a != b || strings.ContainsAny(a, "./") {
		t.Errorf("escapeName: %q, %q", a, b)
	}
	if escapeName("A", false) == escapeName("a", false) {
		t.Error("escapeName folds case of volume names")
	}
}
