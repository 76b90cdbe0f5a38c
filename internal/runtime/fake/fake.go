// Package fake is an in-memory runtime.Runtime for unit tests of the layers
// above the runtime. Nothing runs: containers are simulated.
//
// A container's command (or the test image's default, "/app serve") decides
// what the simulation does, mirroring testimage's modes: "echo ARGS" logs
// ARGS and exits 0, "exit N" exits N, "print-env" logs the environment and
// exits 0, "sleep S" exits 0 after S seconds, "fetch URL" exits 0; "read",
// "write", "mkdir", "stat", "id" and "alloc" act on a simulated filesystem
// (see sim.go); anything else (serve) runs until Exit is called or the group
// is deleted. Exits go through the restart policy with a short back-off, as
// the real runtime does.
//
// Init containers run one after another, each to completion, before the
// containers (instantly: their sleeps take no time); one that exits non-zero
// fails the create with runtime.ErrInitContainer, and one that would run
// forever fails it when the context ends. Volumes are simulated in memory:
// emptyDir and secret volumes per group, shares per runtime (they outlive
// groups), gitRepo volumes cloned from Options.GitRepos. GPUs: the simulated
// host has Options.GPUs; a container asking for more runs without them and
// gets a Warning event, or is refused (Options.GPU "refuse").
//
// Exec simulates a few commands (see Exec); probes run on a compressed clock
// (see SetHealthy). Logs stream with times, tail and follow.
//
// Pulling an image whose reference contains "notfound" fails with
// runtime.ErrImagePull; one whose reference contains "slow" blocks until
// ReleaseSlowPulls is called or the context ends. Groups get addresses 10.99.x.y.
package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/eventbus"
)

// Options configure a fake runtime. The zero value is ready to use.
type Options struct {
	// Clock stamps states and events; default the wall clock.
	Clock clock.Clock
	// BackOff is the first restart delay (real time), doubled per restart up
	// to 1 s; default 10 ms.
	BackOff time.Duration
	// GPUs is how many GPUs the simulated host has.
	GPUs int
	// GPU is "emulate" (the default: GPU containers run without one, with a
	// Warning event) or "refuse" (CreateGroup fails with
	// runtime.ErrUnsupported).
	GPU string
	// GitRepos are the repositories gitRepo volumes can clone, by URL: the
	// files of each (path relative to the repository root → contents).
	// Cloning any other fails with runtime.ErrVolume.
	GitRepos map[string]map[string][]byte
	// ProbeUnit is the real time one second of a probe's timings takes;
	// default 10 ms.
	ProbeUnit time.Duration
}

// Runtime is the fake. Create it with New.
type Runtime struct {
	clock     clock.Clock
	backOff   time.Duration
	probeUnit time.Duration
	bus       *eventbus.Bus
	opts      Options

	gate     chan struct{}
	gateOnce sync.Once

	mu     sync.Mutex
	groups map[string]*group
	shares map[string]*volume // by account/share, lower case
	nextIP int
	closed bool
}

var _ runtime.Runtime = (*Runtime)(nil)

type group struct {
	spec       runtime.GroupSpec
	ip         string
	inits      []*container
	containers []*container
	volumes    map[string]*volume // by name
}

type container struct {
	spec    runtime.ContainerSpec
	status  runtime.ContainerStatus
	logs    logBuffer
	ready   bool // the readiness probe's verdict
	sick    bool // httpGet probes fail (SetHealthy)
	gen     int  // bumped on every start and on delete; stale timers compare it
	backOff time.Duration
	timer   *time.Timer
	rootfs  *volume   // the container's own files (outside its mounts)
	oom     bool      // the current run was killed over its memory limit
	waitTil time.Time // a "read" waiting for its file gives up then
}

// New returns an empty fake runtime.
func New(opts Options) *Runtime {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.BackOff <= 0 {
		opts.BackOff = 10 * time.Millisecond
	}
	if opts.GPU == "" {
		opts.GPU = "emulate"
	}
	if opts.ProbeUnit <= 0 {
		opts.ProbeUnit = 10 * time.Millisecond
	}
	return &Runtime{clock: opts.Clock, backOff: opts.BackOff, probeUnit: opts.ProbeUnit, bus: eventbus.New(0), opts: opts,
		groups: map[string]*group{}, shares: map[string]*volume{}, gate: make(chan struct{})}
}

// CreateGroup simulates pulls, prepares the volumes, runs the init
// containers and starts every container.
func (r *Runtime) CreateGroup(ctx context.Context, spec runtime.GroupSpec) (runtime.GroupStatus, error) {
	if err := validate(spec); err != nil {
		return runtime.GroupStatus{}, err
	}
	if err := r.checkGPUs(spec); err != nil {
		return runtime.GroupStatus{}, err
	}
	for _, c := range allContainers(spec) {
		if strings.Contains(c.Image, "slow") {
			select {
			case <-r.gate:
			case <-ctx.Done():
				return runtime.GroupStatus{}, fmt.Errorf("pull %s: %w", c.Image, ctx.Err())
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return runtime.GroupStatus{}, fmt.Errorf("fake runtime: closed")
	}
	if _, ok := r.groups[spec.ID]; ok {
		return runtime.GroupStatus{}, fmt.Errorf("fake runtime: group %q already exists", spec.ID)
	}
	if err := r.pull(spec); err != nil {
		return runtime.GroupStatus{}, err
	}
	g := &group{spec: spec, volumes: map[string]*volume{}}
	if err := r.prepareVolumes(g, spec); err != nil {
		return runtime.GroupStatus{}, err
	}
	r.nextIP++
	g.ip = fmt.Sprintf("10.99.%d.%d", r.nextIP/250, r.nextIP%250+2)
	r.groups[spec.ID] = g
	if err := r.runInits(ctx, g, nil); err != nil {
		if r.groups[spec.ID] == g {
			r.forget(g)
		}
		return runtime.GroupStatus{}, err
	}
	r.startContainers(g, nil)
	return r.statusLocked(g), nil
}

// pull simulates pulling every image of spec; r.mu is held.
func (r *Runtime) pull(spec runtime.GroupSpec) error {
	for _, c := range allContainers(spec) {
		r.emit(spec.ID, c.Name, runtime.EventPulling, fmt.Sprintf("pulling image %q", c.Image), false, 0)
		if strings.Contains(c.Image, "notfound") {
			msg := fmt.Sprintf("Failed to pull image %q: not found", c.Image)
			r.emit(spec.ID, c.Name, runtime.EventFailed, msg, true, 0)
			return &runtime.ImageError{Image: c.Image, Err: errors.New("not found")}
		}
		r.emit(spec.ID, c.Name, runtime.EventPulled, fmt.Sprintf("Successfully pulled image %q", c.Image), false, 0)
	}
	return nil
}

// startContainers creates g's containers from its spec and starts them,
// carrying over the restart count, previous state and logs of old ones of
// the same name; r.mu is held.
func (r *Runtime) startContainers(g *group, old []*container) {
	g.containers = nil
	for _, cs := range g.spec.Containers {
		c := &container{spec: cs, status: runtime.ContainerStatus{Name: cs.Name}, backOff: r.backOff, rootfs: newVolume("")}
		if o := find(old, cs.Name); o != nil {
			c.status.RestartCount, c.status.Previous = o.status.RestartCount, o.status.Previous
			c.logs.inherit(&o.logs)
		}
		g.containers = append(g.containers, c)
	}
	for _, c := range g.containers {
		r.gpuWarning(g, c)
		r.start(g, c)
	}
}

// forget removes g and stops its simulated processes; r.mu is held.
func (r *Runtime) forget(g *group) {
	for _, c := range append(append([]*container(nil), g.inits...), g.containers...) {
		c.gen++
		if c.timer != nil {
			c.timer.Stop()
		}
		c.logs.close()
	}
	delete(r.groups, g.spec.ID)
}

// RecoverGroup returns the status of an existing group, or creates it.
func (r *Runtime) RecoverGroup(ctx context.Context, spec runtime.GroupSpec) (runtime.GroupStatus, error) {
	r.mu.Lock()
	if g, ok := r.groups[spec.ID]; ok {
		defer r.mu.Unlock()
		return r.statusLocked(g), nil
	}
	r.mu.Unlock()
	return r.CreateGroup(ctx, spec)
}

// Status reports the simulated state.
func (r *Runtime) Status(ctx context.Context, id string) (runtime.GroupStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.groups[id]
	if !ok {
		return runtime.GroupStatus{}, fmt.Errorf("group %q: %w", id, runtime.ErrNotFound)
	}
	return r.statusLocked(g), nil
}

// Logs returns what the simulated container printed.
func (r *Runtime) Logs(ctx context.Context, id, name string, opts runtime.LogOptions) (io.ReadCloser, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.lookup(id, name)
	if err != nil {
		return nil, err
	}
	return c.logs.reader(ctx, opts), nil
}

// ReleaseSlowPulls lets pulls of "slow" images (now and later) complete.
func (r *Runtime) ReleaseSlowPulls() { r.gateOnce.Do(func() { close(r.gate) }) }

// ListGroups returns the ids of the simulated groups.
func (r *Runtime) ListGroups(ctx context.Context) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.groups))
	for id := range r.groups {
		ids = append(ids, id)
	}
	return ids, nil
}

// DeleteGroup forgets the group.
func (r *Runtime) DeleteGroup(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.groups[id]
	if !ok {
		return nil
	}
	for _, c := range append(append([]*container(nil), g.inits...), g.containers...) {
		if c.status.Current.State == runtime.StateRunning {
			r.emit(id, c.spec.Name, runtime.EventKilling, "Killing container", false, 0)
		}
	}
	r.forget(g)
	return nil
}

// Subscribe returns the event stream.
func (r *Runtime) Subscribe() (<-chan runtime.Event, func()) { return r.bus.Subscribe() }

// Close ends subscriptions; further creates fail.
func (r *Runtime) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, g := range r.groups {
		for _, c := range append(append([]*container(nil), g.inits...), g.containers...) {
			c.gen++
			if c.timer != nil {
				c.timer.Stop()
			}
		}
	}
	r.bus.Close()
	return nil
}

// Exit makes a running container exit with code, as if its process had
// exited; the restart policy applies. It fails if the container is unknown
// or not running.
func (r *Runtime) Exit(groupID, name string, code int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.lookup(groupID, name)
	if err != nil {
		return err
	}
	if c.status.Current.State != runtime.StateRunning || find(r.groups[groupID].inits, name) == c {
		return fmt.Errorf("fake runtime: container %q of group %q is not running", name, groupID)
	}
	r.exit(r.groups[groupID], c, code)
	return nil
}

func (r *Runtime) lookup(id, name string) (*container, error) {
	g, ok := r.groups[id]
	if !ok {
		return nil, fmt.Errorf("group %q: %w", id, runtime.ErrNotFound)
	}
	if c := find(g.containers, name); c != nil {
		return c, nil
	}
	if c := find(g.inits, name); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("container %q in group %q: %w", name, id, runtime.ErrNotFound)
}

// start runs c's simulated process; r.mu is held.
func (r *Runtime) start(g *group, c *container) {
	c.gen++
	c.oom = false
	c.status.Current = runtime.ContainerState{State: runtime.StateRunning, StartTime: r.clock.Now()}
	r.emit(g.spec.ID, c.spec.Name, runtime.EventStarted, "Started container", false, 0)
	r.startProbes(g, c)
	c.waitTil = time.Now().Add(readWait(c.spec.Command))
	r.proceed(g, c)
}

// proceed simulates c's process from where it is: it runs on, waits for a
// file, or exits (now or after a while); r.mu is held.
func (r *Runtime) proceed(g *group, c *container) {
	res := r.simulate(g, c, time.Now().After(c.waitTil))
	switch {
	case res.forever:
	case res.retry:
		r.later(g, c, 10*time.Millisecond, func() { r.proceed(g, c) })
	default:
		r.later(g, c, res.after, func() { r.exit(g, c, res.code) })
	}
}

// later runs fn after d unless c was started again or deleted meanwhile.
func (r *Runtime) later(g *group, c *container, d time.Duration, fn func()) {
	gen := c.gen
	c.timer = time.AfterFunc(d, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if c.gen == gen && r.groups[g.spec.ID] == g {
			fn()
		}
	})
}

// exit ends c's process with code and applies the restart policy; r.mu is
// held.
func (r *Runtime) exit(g *group, c *container, code int) {
	now := r.clock.Now()
	term := runtime.ContainerState{
		State:        runtime.StateTerminated,
		StartTime:    c.status.Current.StartTime,
		FinishTime:   now,
		ExitCode:     code,
		DetailStatus: detail(code),
	}
	if c.oom && code == 137 {
		term.DetailStatus = "OOMKilled"
	}
	c.status.Current = term
	r.emit(g.spec.ID, c.spec.Name, runtime.EventExited, fmt.Sprintf("Container exited with code %d", code), false, code)
	policy := g.spec.RestartPolicy
	if policy == runtime.RestartNever || (policy == runtime.RestartOnFailure && code == 0) {
		return
	}
	c.status.Previous = &term
	c.status.Current = runtime.ContainerState{State: runtime.StateWaiting, DetailStatus: "CrashLoopBackOff"}
	r.emit(g.spec.ID, c.spec.Name, runtime.EventBackOff, "Back-off restarting failed container", true, 0)
	d := c.backOff
	c.backOff = min(2*c.backOff, time.Second)
	r.later(g, c, d, func() {
		c.status.RestartCount++
		r.start(g, c)
	})
}

func (r *Runtime) statusLocked(g *group) runtime.GroupStatus {
	st := runtime.GroupStatus{ID: g.spec.ID, IP: g.ip}
	copyStatus := func(c *container) runtime.ContainerStatus {
		cs := c.status
		cs.Ready = cs.Current.State == runtime.StateRunning && (c.spec.Readiness == nil || c.ready)
		if cs.Previous != nil {
			p := *cs.Previous
			cs.Previous = &p
		}
		return cs
	}
	for _, c := range g.inits {
		st.InitContainers = append(st.InitContainers, copyStatus(c))
	}
	for _, c := range g.containers {
		st.Containers = append(st.Containers, copyStatus(c))
	}
	return st
}

func (r *Runtime) emit(id, name string, kind runtime.EventKind, msg string, warn bool, code int) {
	r.bus.Publish(runtime.Event{GroupID: id, Container: name, Kind: kind, Message: msg, Warning: warn, ExitCode: code, Time: r.clock.Now()})
}

func validate(spec runtime.GroupSpec) error {
	if spec.ID == "" {
		return fmt.Errorf("fake runtime: group id is empty")
	}
	if len(spec.Containers) == 0 {
		return fmt.Errorf("fake runtime: group %q has no containers", spec.ID)
	}
	seen := map[string]bool{}
	for _, c := range allContainers(spec) {
		if c.Name == "" || seen[c.Name] {
			return fmt.Errorf("fake runtime: group %q: empty or duplicate container name %q", spec.ID, c.Name)
		}
		seen[c.Name] = true
		if c.GPUs < 0 {
			return fmt.Errorf("fake runtime: group %q: container %q: negative GPU count", spec.ID, c.Name)
		}
	}
	return validateVolumes(spec)
}

// allContainers returns the init containers, then the containers.
func allContainers(spec runtime.GroupSpec) []runtime.ContainerSpec {
	return append(append([]runtime.ContainerSpec(nil), spec.InitContainers...), spec.Containers...)
}

func find(cs []*container, name string) *container {
	for _, c := range cs {
		if c.spec.Name == name {
			return c
		}
	}
	return nil
}

func detail(code int) string {
	if code == 0 {
		return "Completed"
	}
	return "Error"
}

func envOr(env []runtime.EnvVar, name, def string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return def
}
