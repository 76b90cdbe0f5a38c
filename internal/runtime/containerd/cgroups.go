package containerd

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroupRoot is where the host's cgroup filesystems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// withCgroupView gives the container a cgroup namespace rooted at its own
// cgroup and mounts the cgroup filesystem read-only at /sys/fs/cgroup, so
// that it sees its own limits there (v1: memory/memory.limit_in_bytes,
// cpu/cpu.cfs_quota_us; v2: memory.max, cpu.max), as JVMs, .NET and Go size
// themselves from them. runc mounts each v1 hierarchy, or the v2 one, as the
// host has them. A privileged container's becomes writable (WithPrivileged
// runs after this).
func withCgroupView() oci.SpecOpts {
	return oci.Compose(
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.CgroupNamespace}),
		oci.WithMounts([]specs.Mount{{
			Destination: cgroupRoot,
			Type:        "cgroup",
			Source:      "cgroup",
			Options:     []string{"nosuid", "noexec", "nodev", "relatime", "ro"},
		}}),
	)
}

// cgroupV2 reports whether the host uses the unified (v2) hierarchy only.
func cgroupV2() bool {
	_, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers"))
	return err == nil
}

// oomKilled reports whether the kernel's OOM killer killed a process of
// cont's current task, from its memory cgroup's counters (read before the
// task is deleted: deleting it removes the cgroup). False when they cannot
// be read.
func oomKilled(ctx context.Context, cont client.Container) bool {
	s, err := cont.Spec(ctx)
	if err != nil || s.Linux == nil || s.Linux.CgroupsPath == "" || strings.Contains(s.Linux.CgroupsPath, ":") {
		return false // none, or a systemd slice: not ours
	}
	p := filepath.Clean("/" + s.Linux.CgroupsPath)
	if cgroupV2() {
		return counter(filepath.Join(cgroupRoot, p, "memory.events"), "oom_kill") > 0
	}
	return counter(filepath.Join(cgroupRoot, "memory", p, "memory.oom_control"), "oom_kill") > 0
}

// counter reads "key value" from a flat-keyed cgroup file; 0 if absent.
func counter(file, key string) int64 {
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// oomExitCode is the exit code of a process killed by SIGKILL, as the OOM
// killer does; such an exit with the OOM counter up is reported with
// detailOOMKilled, ACI's detail status.
const (
	oomExitCode     = 137
	detailOOMKilled = "OOMKilled"
)
