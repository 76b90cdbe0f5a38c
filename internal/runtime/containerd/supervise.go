package containerd

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/berth-dev/berth/internal/runtime"
)

// startWatcher starts supervising container name of the group unless a
// watcher already does.
func (r *Runtime) startWatcher(g *group, groupID, name string, policy runtime.RestartPolicy) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.watchers[name]; ok {
		return
	}
	ctx, cancel := context.WithCancel(r.ctx)
	w := &watcher{cancel: cancel, done: make(chan struct{})}
	g.watchers[name] = w
	go func() {
		defer close(w.done)
		defer func() {
			g.mu.Lock()
			if g.watchers[name] == w {
				delete(g.watchers, name)
			}
			g.mu.Unlock()
			cancel()
		}()
		r.supervise(ctx, groupID, name, policy)
	}()
}

// stopWatcher stops the watcher of container name, if any, and waits for it.
func (g *group) stopWatcher(name string) {
	g.mu.Lock()
	w := g.watchers[name]
	g.mu.Unlock()
	if w != nil {
		w.cancel()
		<-w.done
	}
}

// supervise keeps container name running as policy says, until the policy
// says it is done, the container is deleted, or ctx ends. Every step reads
// the state from containerd, so it picks up wherever a previous berth left.
func (r *Runtime) supervise(ctx context.Context, groupID, name string, policy runtime.RestartPolicy) {
	cid := containerID(groupID, name)
	for {
		done, err := r.superviseStep(ctx, groupID, name, cid, policy)
		if ctx.Err() != nil || done {
			return
		}
		if errdefs.IsNotFound(err) {
			return // the container is gone
		}
		if err != nil {
			r.log.Warn("supervising container", "group", groupID, "container", name, "err", err)
			if !sleep(ctx, time.Second) {
				return
			}
		}
	}
}

// superviseStep does one step of supervision: wait for a running task, handle
// an exit, wait out a back-off, or start a run. It reports whether
// supervision is over.
func (r *Runtime) superviseStep(ctx context.Context, groupID, name, cid string, policy runtime.RestartPolicy) (bool, error) {
	cont, err := r.client.LoadContainer(ctx, cid)
	if err != nil {
		return false, err
	}
	info, err := cont.Info(ctx, client.WithoutRefreshedMetadata)
	if err != nil {
		return false, err
	}
	bk := parseBookkeeping(info.Labels)
	policy = policyAfterProbes(info.Labels, policy)

	task, err := cont.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return r.noTask(ctx, groupID, name, cont, bk, policy)
	}
	if err != nil {
		return false, err
	}
	st, err := task.Status(ctx)
	if err != nil {
		return false, err
	}
	switch st.Status {
	case client.Stopped:
		return r.handleExit(ctx, groupID, name, cont, task, bk, st, policy)
	case client.Created: // berth stopped between creating and starting it
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return false, err
		}
		return false, r.startTask(context.WithoutCancel(ctx), groupID, name, cont, bk.restarts)
	default: // running (or paused)
		exited, err := task.Wait(ctx)
		if err != nil {
			return false, err
		}
		select {
		case <-exited: // the next step reads how it ended
			return false, nil
		case <-ctx.Done():
			return true, nil
		}
	}
}

// handleExit records a task's exit (once: a re-adopting berth does not
// repeat it), emits Exited, and schedules a restart if the policy wants one.
func (r *Runtime) handleExit(ctx context.Context, groupID, name string, cont client.Container, task client.Task, bk bookkeeping, st client.Status, policy runtime.RestartPolicy) (bool, error) {
	code := int(st.ExitStatus)
	term := terminated(bk.started, st.ExitTime, code)
	if code == oomExitCode && oomKilled(ctx, cont) {
		term.DetailStatus = detailOOMKilled
	}
	if bk.exited == nil || !bk.exited.FinishTime.Equal(term.FinishTime) {
		if _, err := cont.SetLabels(ctx, map[string]string{labelExited: formatState(&term)}); err != nil {
			return false, err
		}
		r.emit(groupID, name, runtime.EventExited, fmt.Sprintf("Container exited with code %d", code), false, code)
	}
	mctx := context.WithoutCancel(ctx) // finish the transition even if berth is stopping
	if !shouldRestart(policy, code) {
		// Done: the exit is in the labels; deleting the task lets its log
		// driver finish (the shim closes the driver's streams).
		if _, err := task.Delete(mctx); err != nil && !errdefs.IsNotFound(err) {
			return false, err
		}
		return true, nil
	}
	if _, err := task.Delete(mctx); err != nil && !errdefs.IsNotFound(err) {
		return false, err
	}
	return false, r.scheduleRestart(mctx, groupID, name, cont, bk, term)
}

// scheduleRestart moves a container whose run ended (term) to waiting:
// the run becomes the previous state and the back-off starts.
func (r *Runtime) scheduleRestart(ctx context.Context, groupID, name string, cont client.Container, bk bookkeeping, term runtime.ContainerState) error {
	delay := r.cfg.RestartBackOff
	if bk.backOff > 0 && term.FinishTime.Sub(term.StartTime) < backOffReset {
		delay = min(2*bk.backOff, r.cfg.MaxRestartBackOff)
	}
	bk.previous, bk.exited = &term, nil
	bk.backOff, bk.waitUntil = delay, time.Now().Add(delay)
	if _, err := cont.SetLabels(ctx, bk.labels()); err != nil {
		return err
	}
	r.emit(groupID, name, runtime.EventBackOff, "Back-off restarting failed container", true, 0)
	return nil
}

// noTask handles a container without a task: waiting out a back-off, never
// started (berth stopped while creating it), or its task lost (host reboot,
// or deleted while berth was away).
func (r *Runtime) noTask(ctx context.Context, groupID, name string, cont client.Container, bk bookkeeping, policy runtime.RestartPolicy) (bool, error) {
	if bk.exited != nil { // its exit was handled, then the task went away
		if !shouldRestart(policy, bk.exited.ExitCode) {
			return true, nil
		}
		return false, r.scheduleRestart(context.WithoutCancel(ctx), groupID, name, cont, bk, *bk.exited)
	}
	if !bk.waitUntil.IsZero() && !sleep(ctx, time.Until(bk.waitUntil)) {
		return true, nil
	}
	restarts := bk.restarts
	if !bk.started.IsZero() { // it ran before: this is a restart
		restarts++
	}
	return false, r.startTask(context.WithoutCancel(ctx), groupID, name, cont, restarts)
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
