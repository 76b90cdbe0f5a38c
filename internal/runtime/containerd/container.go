package containerd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime"
)

// cfsPeriod is the CFS period for CPU caps (100 ms, the kernel default).
const cfsPeriod = 100000

// createContainer creates the containerd container (snapshot, OCI spec,
// labels) for c of group rec (an init container if init). A leftover with the
// same id (from a crash, or an earlier run) is removed first.
func (r *Runtime) createContainer(ctx context.Context, rec *record, spec runtime.GroupSpec, c runtime.ContainerSpec, img client.Image, init bool) (client.Container, error) {
	cid := containerID(rec.ID, c.Name)
	specOpts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithHostname(hostname(rec.ID)),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: r.netnsPath(rec.ID)}),
		oci.WithMounts([]specs.Mount{{
			Destination: "/etc/hosts",
			Type:        "bind",
			Source:      filepath.Join(r.groupDir(rec.ID), "hosts"),
			Options:     []string{"rbind", "ro"},
		}}),
	}
	if len(c.Command) > 0 {
		specOpts = append(specOpts, oci.WithProcessArgs(c.Command...))
	}
	if len(c.Env) > 0 {
		env := make([]string, 0, len(c.Env))
		for _, e := range c.Env {
			env = append(env, e.Name+"="+e.Value)
		}
		specOpts = append(specOpts, oci.WithEnv(env)) // after the image's: these win
	}
	if c.CPU > 0 {
		quota := max(int64(math.Round(c.CPU*cfsPeriod)), 1000) // the kernel's minimum is 1 ms
		specOpts = append(specOpts, oci.WithCPUCFS(quota, cfsPeriod))
	}
	if c.MemoryBytes > 0 {
		specOpts = append(specOpts, oci.WithMemoryLimit(uint64(c.MemoryBytes)))
	}
	core, err := r.coreSpecOpts(spec, c)
	if err != nil {
		return nil, err
	}
	specOpts = append(specOpts, core...)
	labels := map[string]string{}
	for k, v := range rec.Labels { // the group's, for humans using ctr
		if !ownLabels[k] {
			labels[k] = v
		}
	}
	labels[labelGroup], labels[labelName] = rec.ID, c.Name
	if init {
		labels[labelInit] = "true"
	}
	create := func() (client.Container, error) {
		return r.client.NewContainer(ctx, cid,
			client.WithImage(img),
			client.WithSnapshotter(r.snapshotter),
			client.WithNewSnapshot(cid, img),
			client.WithRuntime(plugins.RuntimeRuncV2, &options.Options{Root: r.runcRoot()}),
			client.WithNewSpec(specOpts...),
			client.WithContainerLabels(labels))
	}
	cont, err := create()
	if errdefs.IsAlreadyExists(err) {
		if old, lerr := r.client.LoadContainer(ctx, cid); lerr == nil {
			if rerr := r.removeContainer(ctx, rec.ID, old); rerr != nil {
				return nil, rerr
			}
		}
		// A snapshot without its container is left when creation failed.
		if rerr := r.client.SnapshotService(r.snapshotter).Remove(ctx, cid); rerr != nil && !errdefs.IsNotFound(rerr) {
			return nil, fmt.Errorf("remove leftover snapshot: %w", rerr)
		}
		cont, err = create()
	}
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	return cont, nil
}

// startTask starts a new run of cont, logging to the container's log file,
// and emits Started. The run is recorded in the labels first (restarts is
// the restart count to record), so that Status never pairs a new task with
// the previous run's bookkeeping.
func (r *Runtime) startTask(ctx context.Context, groupID, name string, cont client.Container, restarts int) error {
	logPath := r.logPath(groupID, cont.ID())
	if err := os.MkdirAll(filepath.Dir(logPath), 0o711); err != nil {
		return err
	}
	if _, err := cont.SetLabels(ctx, map[string]string{
		labelStarted:   formatTime(time.Now()),
		labelRestarts:  strconv.Itoa(restarts),
		labelExited:    "",
		labelWaitUntil: "",
	}); err != nil {
		return fmt.Errorf("record start: %w", err)
	}
	task, err := cont.NewTask(ctx, r.taskLog(groupID, cont.ID()))
	if err != nil {
		return fmt.Errorf("create task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		task.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
		return fmt.Errorf("start task: %w", err)
	}
	r.emit(groupID, name, runtime.EventStarted, "Started container", false, 0)
	return nil
}

// removeContainer stops cont (SIGTERM, then SIGKILL after StopTimeout) and
// deletes its task, the container and its snapshot.
func (r *Runtime) removeContainer(ctx context.Context, groupID string, cont client.Container) error {
	name := cont.ID()
	if info, err := cont.Info(ctx, client.WithoutRefreshedMetadata); err == nil && info.Labels[labelName] != "" {
		name = info.Labels[labelName]
	}
	task, err := cont.Task(ctx, nil)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("container %q: load task: %w", name, err)
	default:
		if err := r.stopTask(ctx, groupID, name, task); err != nil {
			return fmt.Errorf("container %q: %w", name, err)
		}
	}
	if err := cont.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("container %q: delete: %w", name, err)
	}
	return nil
}

// stopTask kills a task that still runs and deletes it.
func (r *Runtime) stopTask(ctx context.Context, groupID, name string, task client.Task) error {
	_, err := r.stopTaskStatus(ctx, groupID, name, task)
	return err
}

// stopTaskStatus is stopTask, also returning how the task ended (nil when
// containerd no longer knew).
func (r *Runtime) stopTaskStatus(ctx context.Context, groupID, name string, task client.Task) (*client.ExitStatus, error) {
	st, err := task.Status(ctx)
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("task status: %w", err)
	}
	if st.Status == client.Running || st.Status == client.Paused || st.Status == client.Pausing {
		r.emit(groupID, name, runtime.EventKilling, fmt.Sprintf("Killing container with id %s.", task.ID()), false, 0)
		exited, err := task.Wait(ctx)
		if err != nil {
			return nil, fmt.Errorf("wait task: %w", err)
		}
		if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("SIGTERM: %w", err)
		}
		select {
		case <-exited:
		case <-time.After(r.cfg.StopTimeout):
			if err := task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
				return nil, fmt.Errorf("SIGKILL: %w", err)
			}
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				return nil, errors.New("task did not exit after SIGKILL")
			}
		}
	}
	es, err := task.Delete(ctx, client.WithProcessKill)
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("delete task: %w", err)
	}
	return es, nil
}

// tailLines returns the last n lines of b (all of b if n <= 0).
func tailLines(b []byte, n int) []byte {
	if n <= 0 {
		return b
	}
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n--
			if n == 0 {
				return b[i+1:]
			}
		}
	}
	return b
}
