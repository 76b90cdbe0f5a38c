package containerd

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"github.com/berth-dev/berth/internal/runtime"
)

// Probes work as a kubelet's: each probe of a container runs in its own
// goroutine (a watcher of the group, so it stops with the group's
// supervision and resumes with RecoverGroup), waits initialDelaySeconds
// after each start of the container, then probes every periodSeconds while
// the task runs. A failed probe emits Unhealthy (Warning). failureThreshold
// consecutive liveness failures emit Killing and kill the task; the
// container's watcher then sees the exit and applies the restart policy.
// Readiness is kept in the labelReady label of the containerd container (so
// that Status, read live, reports it, also after a berth restart): the start
// time of the run that is ready, or "no".
const labelReady = "berth.ready"

// labelLivenessKilled holds the start time of a run that the liveness
// probe killed.
const labelLivenessKilled = "berth.liveness-killed"

// policyAfterProbes is the restart policy for the current run's exit: a
// run the liveness probe killed counts as failed whatever its exit code (a
// kubelet restarts it unless the policy is Never).
func policyAfterProbes(labels map[string]string, policy runtime.RestartPolicy) runtime.RestartPolicy {
	if policy == runtime.RestartOnFailure && labels[labelLivenessKilled] != "" && labels[labelLivenessKilled] == labels[labelStarted] {
		return runtime.RestartAlways
	}
	return policy
}

// notReady is labelReady's value while a container with a readiness probe
// is not ready.
const notReady = "no"

// probeKind is liveness or readiness.
type probeKind string

const (
	liveness  probeKind = "Liveness"
	readiness probeKind = "Readiness"
)

// timings are a probe's timings with ACI's defaults applied.
type timings struct {
	initialDelay, period, timeout time.Duration
	failures, successes           int
}

func probeTimings(p *runtime.Probe) timings {
	def := func(v, d int) int {
		if v <= 0 {
			return d
		}
		return v
	}
	return timings{
		initialDelay: time.Duration(max(p.InitialDelaySeconds, 0)) * time.Second,
		period:       time.Duration(def(p.PeriodSeconds, 10)) * time.Second,
		timeout:      time.Duration(def(p.TimeoutSeconds, 1)) * time.Second,
		failures:     def(p.FailureThreshold, 3),
		successes:    def(p.SuccessThreshold, 1),
	}
}

// startProbes starts probing container c of group groupID, unless it has no
// probes or they already run.
func (r *Runtime) startProbes(g *group, groupID string, c runtime.ContainerSpec, policy runtime.RestartPolicy) {
	for _, p := range []struct {
		kind  probeKind
		probe *runtime.Probe
	}{{liveness, c.Liveness}, {readiness, c.Readiness}} {
		if p.probe == nil {
			continue
		}
		key := "probe:" + string(p.kind) + ":" + c.Name
		g.mu.Lock()
		_, running := g.watchers[key]
		g.mu.Unlock()
		if running {
			continue
		}
		if p.kind == readiness {
			r.initReadiness(groupID, c.Name)
		}
		ctx, cancel := context.WithCancel(r.ctx)
		w := &watcher{cancel: cancel, done: make(chan struct{})}
		g.mu.Lock()
		g.watchers[key] = w
		g.mu.Unlock()
		go func() {
			defer close(w.done)
			defer func() {
				g.mu.Lock()
				if g.watchers[key] == w {
					delete(g.watchers, key)
				}
				g.mu.Unlock()
				cancel()
			}()
			r.probeLoop(ctx, groupID, c.Name, p.kind, p.probe, policy)
		}()
	}
}

// initReadiness marks a container with a readiness probe not ready, unless
// a verdict is recorded already (berth restarted while it ran).
func (r *Runtime) initReadiness(groupID, name string) {
	ctx := r.ctx
	cont, err := r.client.LoadContainer(ctx, containerID(groupID, name))
	if err != nil {
		return
	}
	info, err := cont.Info(ctx, client.WithoutRefreshedMetadata)
	if err != nil || info.Labels[labelReady] != "" {
		return
	}
	if _, err := cont.SetLabels(ctx, map[string]string{labelReady: notReady}); err != nil {
		r.log.Warn("recording readiness", "group", groupID, "container", name, "err", err)
	}
}

// readyOf is ContainerStatus.Ready from a container's labels and state.
func readyOf(labels map[string]string, cur runtime.ContainerState) bool {
	if cur.State != runtime.StateRunning {
		return false
	}
	v := labels[labelReady]
	return v == "" || v == labels[labelStarted]
}

// probeLoop probes one container until ctx ends or the container is gone.
func (r *Runtime) probeLoop(ctx context.Context, groupID, name string, kind probeKind, p *runtime.Probe, policy runtime.RestartPolicy) {
	cid := containerID(groupID, name)
	t := probeTimings(p)
	var (
		run              string // labelStarted of the run being probed
		successes, fails int
		wait             time.Duration
	)
	for {
		if !sleep(ctx, wait) {
			return
		}
		wait = t.period
		cont, err := r.client.LoadContainer(ctx, cid)
		if errdefs.IsNotFound(err) {
			return
		}
		if err != nil {
			continue
		}
		info, err := cont.Info(ctx, client.WithoutRefreshedMetadata)
		if err != nil {
			continue
		}
		resp, err := r.client.TaskService().Get(ctx, &tasks.GetRequest{ContainerID: cid})
		if err := errgrpc.ToNative(err); err != nil || resp.GetProcess().GetStatus() != tasktypes.Status_RUNNING {
			wait = min(t.period, time.Second) // not running: look again soon
			continue
		}
		if started := info.Labels[labelStarted]; started != run {
			run, successes, fails = started, 0, 0
			if until := parseTime(started).Add(t.initialDelay); time.Until(until) > 0 {
				wait = time.Until(until)
				continue
			}
		}
		ok, msg := r.probeOnce(ctx, groupID, name, p, t.timeout)
		if ctx.Err() != nil {
			return
		}
		if ok {
			successes, fails = successes+1, 0
		} else {
			successes, fails = 0, fails+1
			r.emit(groupID, name, runtime.EventUnhealthy, fmt.Sprintf("%s probe failed: %s", kind, msg), true, 0)
		}
		switch kind {
		case liveness:
			if fails >= t.failures {
				what := "will be restarted"
				if !shouldRestart(policy, 137) {
					what = "will be killed"
				}
				r.emit(groupID, name, runtime.EventKilling, fmt.Sprintf("Container %s failed liveness probe, %s", name, what), false, 0)
				if _, err := cont.SetLabels(ctx, map[string]string{labelLivenessKilled: run}); err != nil {
					r.log.Warn("recording a liveness kill", "group", groupID, "container", name, "err", err)
				}
				r.killTask(ctx, groupID, name, cont)
				run, fails = "", 0 // the next run starts afresh
			}
		case readiness:
			label := info.Labels[labelReady]
			switch {
			case ok && successes >= t.successes && label != run:
				label = run
			case !ok && fails >= t.failures && label != notReady:
				label = notReady
			default:
				continue
			}
			if _, err := cont.SetLabels(ctx, map[string]string{labelReady: label}); err != nil && ctx.Err() == nil {
				r.log.Warn("recording readiness", "group", groupID, "container", name, "err", err)
			}
		}
	}
}

// killTask stops a container's running task (SIGTERM, then SIGKILL after
// StopTimeout) without deleting it: its watcher handles the exit.
func (r *Runtime) killTask(ctx context.Context, groupID, name string, cont client.Container) {
	task, err := cont.Task(ctx, nil)
	if err != nil {
		return
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		return
	}
	if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
		r.log.Warn("liveness kill", "group", groupID, "container", name, "err", err)
	}
	select {
	case <-exited:
	case <-ctx.Done():
	case <-time.After(r.cfg.StopTimeout):
		if err := task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
			r.log.Warn("liveness kill", "group", groupID, "container", name, "err", err)
		}
	}
}

// probeOnce runs one probe; it reports success, or a message saying why
// not.
func (r *Runtime) probeOnce(ctx context.Context, groupID, name string, p *runtime.Probe, timeout time.Duration) (bool, string) {
	if p.HTTPGet != nil {
		return r.httpProbe(ctx, groupID, p.HTTPGet, timeout)
	}
	return r.execProbe(ctx, groupID, name, p.Exec, timeout)
}

// execProbe runs cmd in the container; exit code 0 is success.
func (r *Runtime) execProbe(ctx context.Context, groupID, name string, cmd []string, timeout time.Duration) (bool, string) {
	if len(cmd) == 0 {
		return false, "no command"
	}
	task, base, err := r.runningTask(ctx, groupID, name)
	if err != nil {
		return false, err.Error()
	}
	out := &capped{max: 1024}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p, exited, err := r.startProcess(ctx, wctx, task, base, processOpts{args: cmd, out: out})
	if err != nil {
		return false, err.Error()
	}
	code, err := r.finishProcess(p, exited)
	switch {
	case wctx.Err() != nil && ctx.Err() == nil:
		return false, fmt.Sprintf("command %q timed out after %v", strings.Join(cmd, " "), timeout)
	case err != nil:
		return false, err.Error()
	case code != 0:
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return false, msg
		}
		return false, fmt.Sprintf("command %q exited with code %d", strings.Join(cmd, " "), code)
	}
	return true, ""
}

// probeTransport dials probes from the host; certificates are not checked
// (as a kubelet does).
var probeTransport = &http.Transport{
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes do not verify
	DisableKeepAlives: true,
	Proxy:             nil,
}

// httpProbe GETs the probe's path on the group's address; 200–399 is
// success.
func (r *Runtime) httpProbe(ctx context.Context, groupID string, h *runtime.HTTPGetProbe, timeout time.Duration) (bool, string) {
	rec, err := r.readRecord(groupID)
	if err != nil {
		return false, err.Error()
	}
	if rec.IP == "" {
		return false, "the group has no address"
	}
	scheme := strings.ToLower(h.Scheme)
	if scheme == "" {
		scheme = "http"
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := scheme + "://" + net.JoinHostPort(rec.IP, strconv.Itoa(h.Port)) + path
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "berth-probe/1.0")
	for k, v := range h.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: probeTransport}).Do(req)
	if err != nil {
		return false, err.Error()
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return true, ""
}

// capped keeps the first max bytes written to it and discards the rest.
type capped struct {
	max int
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}
