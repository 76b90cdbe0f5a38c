package containerd

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	goruntime "runtime"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime"
)

// A container's security context becomes its OCI spec as follows (nil
// fields keep containerd's defaults: root, its default capability set,
// no_new_privs, and the default seccomp profile Docker and containerd use):
//
//	runAsUser / runAsGroup     process uid / gid (a uid alone takes its gid
//	                           from the image's /etc/passwd, else 0)
//	capabilities add / drop    bounding, effective and permitted sets: add
//	                           "ALL" (every capability berth has), drop "ALL"
//	                           (none), then the named ones added, then the
//	                           named ones dropped (as Kubernetes does: drop
//	                           ALL + add NET_ADMIN leaves NET_ADMIN)
//	allowPrivilegeEscalation   false: no_new_privs; true: without it
//	privileged                 every capability, every host device, writable
//	                           /sys and /sys/fs/cgroup, no seccomp filter
//	seccompProfile             the profile (base64 of its JSON, in the
//	                           Docker/OCI format) replaces the default

// validateSecurity checks what securityOpts would refuse, so that a bad
// context is refused before anything is pulled or made.
func validateSecurity(sc *runtime.SecurityContext) error {
	_, err := securityOpts(sc)
	return err
}

// securityOpts returns the spec options for sc (the defaults for nil).
func securityOpts(sc *runtime.SecurityContext) ([]oci.SpecOpts, error) {
	if sc == nil {
		sc = &runtime.SecurityContext{}
	}
	var opts []oci.SpecOpts
	switch {
	case sc.RunAsUser != nil && sc.RunAsGroup != nil:
		uid, gid, err := ids(*sc.RunAsUser, *sc.RunAsGroup)
		if err != nil {
			return nil, err
		}
		opts = append(opts, oci.WithUIDGID(uid, gid))
	case sc.RunAsUser != nil:
		uid, _, err := ids(*sc.RunAsUser, 0)
		if err != nil {
			return nil, err
		}
		opts = append(opts, oci.WithUserID(uid))
	case sc.RunAsGroup != nil:
		_, gid, err := ids(0, *sc.RunAsGroup)
		if err != nil {
			return nil, err
		}
		opts = append(opts, withGID(gid))
	}

	add, err := normalizeCaps(sc.CapabilitiesAdd)
	if err != nil {
		return nil, fmt.Errorf("capabilities add: %w", err)
	}
	drop, err := normalizeCaps(sc.CapabilitiesDrop)
	if err != nil {
		return nil, fmt.Errorf("capabilities drop: %w", err)
	}
	privileged := sc.Privileged != nil && *sc.Privileged
	if !privileged { // as containerd's CRI plugin does it
		if slices.Contains(add, "ALL") {
			opts = append(opts, oci.WithAllCurrentCapabilities)
		}
		if slices.Contains(drop, "ALL") {
			opts = append(opts, oci.WithCapabilities(nil))
		}
		opts = append(opts, oci.WithAddedCapabilities(without(add, "ALL")), oci.WithDroppedCapabilities(without(drop, "ALL")))
	}

	if sc.AllowPrivilegeEscalation != nil {
		if *sc.AllowPrivilegeEscalation {
			opts = append(opts, oci.WithNewPrivileges)
		} else {
			opts = append(opts, oci.WithNoNewPrivileges)
		}
	}

	var profile *specs.LinuxSeccomp
	if sc.SeccompProfile != "" {
		if profile, err = parseSeccomp(sc.SeccompProfile); err != nil {
			return nil, err
		}
	}
	switch {
	case privileged:
		opts = append(opts, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices)
		if profile != nil { // asked for explicitly: honoured even so
			opts = append(opts, withSeccomp(profile))
		}
	case profile != nil:
		opts = append(opts, withSeccomp(profile))
	default: // after the capabilities: the default profile depends on them
		opts = append(opts, seccomp.WithDefaultProfile())
	}
	return opts, nil
}

func ids(uid, gid int64) (uint32, uint32, error) {
	const maxID = 1<<32 - 2 // 2^32-1 is "no id"
	if uid < 0 || uid > maxID || gid < 0 || gid > maxID {
		return 0, 0, fmt.Errorf("runAsUser %d / runAsGroup %d: want 0 to %d", uid, gid, int64(maxID))
	}
	return uint32(uid), uint32(gid), nil
}

// withGID sets the process's group, keeping its user.
func withGID(gid uint32) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.User.GID = gid
		return nil
	}
}

func withSeccomp(p *specs.LinuxSeccomp) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		cp := *p
		s.Linux.Seccomp = &cp
		return nil
	}
}

// normalizeCaps turns capability names as ACI takes them ("NET_ADMIN",
// "CAP_NET_ADMIN", any case) into the kernel's ("CAP_NET_ADMIN"); "ALL"
// stays. Unknown names are an error.
func normalizeCaps(in []string) ([]string, error) {
	known := cap.Known()
	var out []string
	for _, c := range in {
		n := strings.ToUpper(strings.TrimSpace(c))
		if n == "ALL" {
			out = append(out, n)
			continue
		}
		if !strings.HasPrefix(n, "CAP_") {
			n = "CAP_" + n
		}
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("unknown capability %q", c)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func without(list []string, s string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(x string) bool { return x == s })
}

// dockerSeccomp is a seccomp profile in Docker's format, a superset of the
// OCI one: architectures may come as an archMap, syscalls may name one
// syscall in "name".
type dockerSeccomp struct {
	specs.LinuxSeccomp
	ArchMap []struct {
		Architecture     specs.Arch   `json:"architecture"`
		SubArchitectures []specs.Arch `json:"subArchitectures"`
	} `json:"archMap"`
	Syscalls []struct {
		specs.LinuxSyscall
		Name string `json:"name"`
	} `json:"syscalls"`
}

// nativeArch is the seccomp architecture of this machine's processes.
var nativeArch = map[string]specs.Arch{
	"amd64": specs.ArchX86_64, "arm64": specs.ArchAARCH64, "386": specs.ArchX86,
	"arm": specs.ArchARM, "ppc64le": specs.ArchPPC64LE, "s390x": specs.ArchS390X,
	"riscv64": specs.ArchRISCV64,
}[goruntime.GOARCH]

var seccompActions = []specs.LinuxSeccompAction{
	specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap, specs.ActErrno,
	specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify,
}

// parseSeccomp decodes an ACI seccompProfile: base64 of a JSON seccomp
// profile (Docker's or the OCI format). It must have a known default action
// and every rule syscall names and a known action.
func parseSeccomp(b64 string) (*specs.LinuxSeccomp, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, fmt.Errorf("seccompProfile: not base64: %w", err)
	}
	var d dockerSeccomp
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("seccompProfile: not a JSON seccomp profile: %w", err)
	}
	p := d.LinuxSeccomp
	if !slices.Contains(seccompActions, p.DefaultAction) {
		return nil, fmt.Errorf("seccompProfile: defaultAction %q: want one of %v", p.DefaultAction, seccompActions)
	}
	if len(p.Architectures) == 0 && nativeArch != "" {
		for _, a := range d.ArchMap {
			if a.Architecture == nativeArch {
				p.Architectures = append([]specs.Arch{a.Architecture}, a.SubArchitectures...)
			}
		}
	}
	p.Syscalls = nil
	for i, sc := range d.Syscalls {
		rule := sc.LinuxSyscall
		if sc.Name != "" {
			rule.Names = append(rule.Names, sc.Name)
		}
		if len(rule.Names) == 0 {
			return nil, fmt.Errorf("seccompProfile: syscall rule %d names no syscall", i)
		}
		if !slices.Contains(seccompActions, rule.Action) {
			return nil, fmt.Errorf("seccompProfile: syscall rule %d (%s): action %q: want one of %v", i, rule.Names[0], rule.Action, seccompActions)
		}
		p.Syscalls = append(p.Syscalls, rule)
	}
	return &p, nil
}
