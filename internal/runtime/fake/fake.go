// Package fake is an in-memory runtime.Runtime for unit tests of the layers
// above the runtime. Nothing runs: containers are simulated.
//
// A container's command (or the test image's default, "/app serve") decides
// what the simulation does, mirroring testimage's modes: "echo ARGS" logs
// ARGS and exits 0, "exit N" exits N, "print-env" logs the environment and
// exits 0, "sleep S" exits 0 after S seconds, "fetch URL" exits 0; anything
// else (serve) runs until Exit is called or the group is deleted. Exits go
// through the restart policy with a short back-off, as the real runtime does.
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
	"sort"
	"strconv"
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

	gate     chan struct{}
	gateOnce sync.Once

	mu     sync.Mutex
	groups map[string]*group
	nextIP int
	closed bool
}

var _ runtime.Runtime = (*Runtime)(nil)

type group struct {
	spec       runtime.GroupSpec
	ip         string
	containers []*container
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
}

// New returns an empty fake runtime.
func New(opts Options) *Runtime {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.BackOff <= 0 {
		opts.BackOff = 10 * time.Millisecond
	}
	if opts.ProbeUnit <= 0 {
		opts.ProbeUnit = 10 * time.Millisecond
	}
	return &Runtime{clock: opts.Clock, backOff: opts.BackOff, probeUnit: opts.ProbeUnit, bus: eventbus.New(0), groups: map[string]*group{}, gate: make(chan struct{})}
}

// CreateGroup simulates pulls and starts every container.
func (r *Runtime) CreateGroup(ctx context.Context, spec runtime.GroupSpec) (runtime.GroupStatus, error) {
	if err := validate(spec); err != nil {
		return runtime.GroupStatus{}, err
	}
	for _, c := range spec.Containers {
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
	for _, c := range spec.Containers {
		r.emit(spec.ID, c.Name, runtime.EventPulling, fmt.Sprintf("pulling image %q", c.Image), false, 0)
		if strings.Contains(c.Image, "notfound") {
			msg := fmt.Sprintf("Failed to pull image %q: not found", c.Image)
			r.emit(spec.ID, c.Name, runtime.EventFailed, msg, true, 0)
			return runtime.GroupStatus{}, &runtime.ImageError{Image: c.Image, Err: errors.New("not found")}
		}
		r.emit(spec.ID, c.Name, runtime.EventPulled, fmt.Sprintf("Successfully pulled image %q", c.Image), false, 0)
	}
	r.nextIP++
	g := &group{spec: spec, ip: fmt.Sprintf("10.99.%d.%d", r.nextIP/250, r.nextIP%250+2)}
	for _, cs := range spec.Containers {
		c := &container{spec: cs, status: runtime.ContainerStatus{Name: cs.Name}, backOff: r.backOff}
		g.containers = append(g.containers, c)
	}
	r.groups[spec.ID] = g
	for _, c := range g.containers {
		r.start(g, c)
	}
	return r.statusLocked(g), nil
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

// RestartGroup restarts every container of the group.
func (r *Runtime) RestartGroup(ctx context.Context, spec runtime.GroupSpec) (runtime.GroupStatus, error) {
	return runtime.GroupStatus{}, fmt.Errorf("fake restart: %w", runtime.ErrUnsupported)
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
	for _, c := range g.containers {
		if c.status.Current.State == runtime.StateRunning {
			r.emit(id, c.spec.Name, runtime.EventKilling, "Killing container", false, 0)
		}
		c.gen++
		if c.timer != nil {
			c.timer.Stop()
		}
		c.logs.close()
	}
	delete(r.groups, id)
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
		for _, c := range g.containers {
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
	if c.status.Current.State != runtime.StateRunning {
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
	for _, c := range g.containers {
		if c.spec.Name == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("container %q in group %q: %w", name, id, runtime.ErrNotFound)
}

// start runs c's simulated process; r.mu is held.
func (r *Runtime) start(g *group, c *container) {
	c.gen++
	c.status.Current = runtime.ContainerState{State: runtime.StateRunning, StartTime: r.clock.Now()}
	r.emit(g.spec.ID, c.spec.Name, runtime.EventStarted, "Started container", false, 0)
	r.startProbes(g, c)

	args := c.spec.Command
	if len(args) == 0 {
		args = []string{"/app", "serve"}
	}
	if args[0] == "/app" || args[0] == "app" {
		args = args[1:]
	}
	mode, rest := "serve", []string(nil)
	if len(args) > 0 {
		mode, rest = args[0], args[1:]
	}
	code, after := 0, time.Duration(0)
	switch mode {
	case "echo":
		fmt.Fprintln(&c.logs, strings.Join(rest, " "))
	case "print-env":
		env := []string{"PATH=/bin"}
		for _, e := range c.spec.Env {
			env = append(env, e.Name+"="+e.Value)
		}
		sort.Strings(env)
		for _, kv := range env {
			fmt.Fprintln(&c.logs, kv)
		}
	case "exit":
		if len(rest) > 0 {
			code, _ = strconv.Atoi(rest[0])
		}
	case "sleep":
		if len(rest) > 0 {
			s, _ := strconv.ParseFloat(rest[0], 64)
			after = time.Duration(s * float64(time.Second))
		}
	case "fetch":
	default: // serve: runs until told otherwise
		fmt.Fprintf(&c.logs, "listening on :%s\n", envOr(c.spec.Env, "PORT", "8080"))
		return
	}
	r.later(g, c, after, func() { r.exit(g, c, code) })
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
	for _, c := range g.containers {
		cs := c.status
		cs.Ready = cs.Current.State == runtime.StateRunning && (c.spec.Readiness == nil || c.ready)
		if cs.Previous != nil {
			p := *cs.Previous
			cs.Previous = &p
		}
		st.Containers = append(st.Containers, cs)
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
	for _, c := range spec.Containers {
		if c.Name == "" || seen[c.Name] {
			return fmt.Errorf("fake runtime: group %q: empty or duplicate container name %q", spec.ID, c.Name)
		}
		seen[c.Name] = true
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
