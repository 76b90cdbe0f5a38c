package fake

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/runtime"
)

// Probes are simulated on a compressed clock: one second of a probe's
// timings is Options.ProbeUnit of real time. An exec probe runs the
// simulated command (see Exec); an httpGet probe succeeds while the
// container serves (the test image's serve mode) on the probe's port, and
// fails while SetHealthy says it is unhealthy. A liveness failure past the
// threshold emits Killing and ends the run as a kill does (exit code 137);
// the restart policy applies, as for the real runtime.

// SetHealthy makes the httpGet probes of a container succeed (true, the
// default) or fail, as the test image's /health?ok= endpoint does.
func (r *Runtime) SetHealthy(groupID, name string, healthy bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.lookup(groupID, name)
	if err != nil {
		return err
	}
	c.sick = !healthy
	return nil
}

// startProbes schedules the probes of c's current run; r.mu is held.
func (r *Runtime) startProbes(g *group, c *container) {
	c.ready = false
	for _, p := range []struct {
		kind  string
		probe *runtime.Probe
	}{{"Liveness", c.spec.Liveness}, {"Readiness", c.spec.Readiness}} {
		if p.probe != nil {
			st := &probeState{kind: p.kind, probe: p.probe, gen: c.gen}
			r.probeAfter(g, c, st, r.probeUnit*time.Duration(max(p.probe.InitialDelaySeconds, 0)))
		}
	}
}

type probeState struct {
	kind             string
	probe            *runtime.Probe
	gen              int // the run probed
	successes, fails int
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// probeAfter runs the probe after d, and again every period while the run
// lasts.
func (r *Runtime) probeAfter(g *group, c *container, st *probeState, d time.Duration) {
	time.AfterFunc(d, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if c.gen != st.gen || r.groups[g.spec.ID] != g || r.closed || c.status.Current.State != runtime.StateRunning {
			return // the run ended: the next one has its own probes
		}
		p := st.probe
		ok, msg := r.probeOnce(c, p)
		if ok {
			st.successes, st.fails = st.successes+1, 0
		} else {
			st.successes, st.fails = 0, st.fails+1
			r.emit(g.spec.ID, c.spec.Name, runtime.EventUnhealthy, fmt.Sprintf("%s probe failed: %s", st.kind, msg), true, 0)
		}
		switch {
		case st.kind == "Liveness" && st.fails >= orDefault(p.FailureThreshold, 3):
			r.emit(g.spec.ID, c.spec.Name, runtime.EventKilling, fmt.Sprintf("Container %s failed liveness probe, will be restarted", c.spec.Name), false, 0)
			r.exit(g, c, 137)
			return
		case st.kind == "Readiness" && ok && st.successes >= orDefault(p.SuccessThreshold, 1):
			c.ready = true
		case st.kind == "Readiness" && !ok && st.fails >= orDefault(p.FailureThreshold, 3):
			c.ready = false
		}
		r.probeAfter(g, c, st, r.probeUnit*time.Duration(orDefault(p.PeriodSeconds, 10)))
	})
}

// probeOnce runs one probe; r.mu is held.
func (r *Runtime) probeOnce(c *container, p *runtime.Probe) (bool, string) {
	if h := p.HTTPGet; h != nil {
		if port := envOr(c.spec.Env, "PORT", "8080"); !serves(c.spec.Command) || fmt.Sprint(h.Port) != port {
			return false, fmt.Sprintf("dial tcp :%d: connect: connection refused", h.Port)
		}
		if c.sick {
			return false, "HTTP probe failed with statuscode: 500"
		}
		return true, ""
	}
	if len(p.Exec) == 0 || known(p.Exec) != nil {
		return false, fmt.Sprintf("exec: %q: executable file not found in $PATH", strings.Join(p.Exec, " "))
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.probeUnit*time.Duration(orDefault(p.TimeoutSeconds, 1)))
	defer cancel()
	var out strings.Builder
	pr := &proc{ctx: ctx, stdin: strings.NewReader(""), out: &out, log: io.Discard}
	if code := pr.run(p.Exec); code != 0 {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return false, msg
		}
		return false, fmt.Sprintf("command %q exited with code %d", strings.Join(p.Exec, " "), code)
	}
	return true, ""
}

// serves reports whether a container's command is the test image's serve
// mode (its default).
func serves(cmd []string) bool {
	args := cmd
	if len(args) > 0 && (args[0] == "/app" || args[0] == "app") {
		args = args[1:]
	}
	return len(args) == 0 || args[0] == "serve"
}
