package containerd

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime"
)

// coreSpecOpts are the parts of c's OCI spec that come from the group's
// volumes, DNS, security context and GPUs, in the order they must apply:
// mounts first (the privileged option makes the cgroup mount writable), the
// security context, then CDI (which may add mounts, devices and
// environment). It may emit the GPU warning event.
func (r *Runtime) coreSpecOpts(spec runtime.GroupSpec, c runtime.ContainerSpec) ([]oci.SpecOpts, error) {
	mounts := append([]specs.Mount{{
		Destination: "/etc/resolv.conf",
		Type:        "bind",
		Source:      r.resolvConfPath(spec.ID),
		Options:     []string{"rbind", "ro"},
	}}, r.volumeMounts(spec, c)...)
	opts := []oci.SpecOpts{oci.WithMounts(mounts), withCgroupView()}
	sec, err := securityOpts(c.Security)
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)
	opts = append(opts, r.gpuOpts(spec.ID, c)...)
	return append(opts, withSortedMounts), nil
}

// withSortedMounts orders the mounts parents first (by the number of
// elements of their destination, stably), as containerd's CRI plugin does:
// a volume mounted at /etc must not hide /etc/hosts and /etc/resolv.conf.
func withSortedMounts(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	depth := func(m specs.Mount) int {
		return strings.Count(strings.TrimSuffix(path.Clean(m.Destination), "/"), "/")
	}
	slices.SortStableFunc(s.Mounts, func(a, b specs.Mount) int { return depth(a) - depth(b) })
	return nil
}

// validateCore checks what the features above take from a spec: volumes and
// mounts, DNS, security contexts.
func validateCore(spec runtime.GroupSpec) error {
	if err := validateVolumes(spec); err != nil {
		return err
	}
	if err := validateDNS(spec.DNS); err != nil {
		return err
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		if err := validateSecurity(c.Security); err != nil {
			return fmt.Errorf("group %q: container %q: security context: %w", spec.ID, c.Name, err)
		}
		if c.GPUs < 0 {
			return fmt.Errorf("group %q: container %q: GPU count %d is negative", spec.ID, c.Name, c.GPUs)
		}
	}
	return nil
}
