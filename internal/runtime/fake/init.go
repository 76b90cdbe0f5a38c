package fake

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth/internal/runtime"
)

// runInits runs g's init containers in order, each to completion, carrying
// over the logs of old ones of the same name. One that exits non-zero stops
// the sequence with an error wrapping runtime.ErrInitContainer; one that
// would run forever does so when ctx ends (r.mu is released meanwhile).
// r.mu is held.
func (r *Runtime) runInits(ctx context.Context, g *group, old []*container) error {
	g.inits = nil
	for _, cs := range g.spec.InitContainers {
		c := &container{spec: cs, status: runtime.ContainerStatus{Name: cs.Name}, rootfs: newVolume("")}
		if o := find(old, cs.Name); o != nil {
			c.logs.inherit(&o.logs)
		}
		c.status.Current.State = runtime.StateWaiting
		g.inits = append(g.inits, c)
	}
	for _, c := range g.inits {
		r.gpuWarning(g, c)
		c.gen++
		c.status.Current = runtime.ContainerState{State: runtime.StateRunning, StartTime: r.clock.Now()}
		r.emit(g.spec.ID, c.spec.Name, runtime.EventStarted, "Started container", false, 0)
		res := r.simulate(g, c, true)
		if res.forever {
			gen := c.gen
			r.mu.Unlock()
			<-ctx.Done()
			r.mu.Lock()
			if r.groups[g.spec.ID] != g || c.gen != gen {
				return fmt.Errorf("group %q: init container %q: deleted while running: %w", g.spec.ID, c.spec.Name, runtime.ErrInitContainer)
			}
			return fmt.Errorf("group %q: init container %q: %w: %w", g.spec.ID, c.spec.Name, runtime.ErrInitContainer, ctx.Err())
		}
		code := res.code
		c.status.Current = runtime.ContainerState{
			State: runtime.StateTerminated, StartTime: c.status.Current.StartTime,
			FinishTime: r.clock.Now(), ExitCode: code, DetailStatus: detail(code),
		}
		if c.oom && code == 137 {
			c.status.Current.DetailStatus = "OOMKilled"
		}
		r.emit(g.spec.ID, c.spec.Name, runtime.EventExited, fmt.Sprintf("Container exited with code %d", code), false, code)
		if code != 0 {
			return fmt.Errorf("group %q: init container %q: %w: exited with code %d", g.spec.ID, c.spec.Name, runtime.ErrInitContainer, code)
		}
	}
	return nil
}

// checkGPUs refuses GPU requests beyond the simulated host's in refuse mode.
func (r *Runtime) checkGPUs(spec runtime.GroupSpec) error {
	if r.opts.GPU != "refuse" {
		return nil
	}
	for _, c := range allContainers(spec) {
		if c.GPUs > r.opts.GPUs {
			return fmt.Errorf("fake runtime: group %q: container %q requests %d GPU(s); the host has %d: %w",
				spec.ID, c.Name, c.GPUs, r.opts.GPUs, runtime.ErrUnsupported)
		}
	}
	return nil
}

// gpuWarning emits the Warning event of a container asking for more GPUs
// than the host has; r.mu is held.
func (r *Runtime) gpuWarning(g *group, c *container) {
	if c.spec.GPUs > r.opts.GPUs {
		r.emit(g.spec.ID, c.spec.Name, runtime.EventWarning, fmt.Sprintf(
			"Container requests %d GPU(s) but this host has %d: it runs without a GPU", c.spec.GPUs, r.opts.GPUs), true, 0)
	}
}

// RestartGroup restarts the group in place, as the real runtime does: pulls
// (a failure changes nothing), running containers killed (their run becomes
// the previous state), init containers run again, containers started again
// with their restart counts; same address.
func (r *Runtime) RestartGroup(ctx context.Context, spec runtime.GroupSpec) (runtime.GroupStatus, error) {
	if err := validate(spec); err != nil {
		return runtime.GroupStatus{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.groups[spec.ID]
	if !ok {
		return runtime.GroupStatus{}, fmt.Errorf("group %q: %w", spec.ID, runtime.ErrNotFound)
	}
	if err := r.checkGPUs(spec); err != nil {
		return runtime.GroupStatus{}, err
	}
	if err := r.pull(spec); err != nil {
		return runtime.GroupStatus{}, err
	}
	if err := r.prepareVolumes(g, spec); err != nil {
		return runtime.GroupStatus{}, err
	}
	now := r.clock.Now()
	for _, c := range g.containers {
		c.gen++
		if c.timer != nil {
			c.timer.Stop()
		}
		switch c.status.Current.State {
		case runtime.StateRunning: // SIGTERM: the test image exits 0
			r.emit(spec.ID, c.spec.Name, runtime.EventKilling, "Killing container", false, 0)
			term := runtime.ContainerState{State: runtime.StateTerminated, StartTime: c.status.Current.StartTime,
				FinishTime: now, ExitCode: 0, DetailStatus: detail(0)}
			c.status.Current, c.status.Previous = term, &term
		case runtime.StateTerminated:
			term := c.status.Current
			c.status.Previous = &term
		}
	}
	old := g.containers
	g.spec = spec
	if err := r.runInits(ctx, g, g.inits); err != nil {
		return runtime.GroupStatus{}, err
	}
	r.startContainers(g, old)
	return r.statusLocked(g), nil
}
