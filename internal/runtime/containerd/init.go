package containerd

import (
	"context"
	"fmt"
	"slices"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/berth-dev/berth/internal/runtime"
)

// Init containers are containerd containers like the others (labelled
// berth.init), run by CreateGroup (and RestartGroup, and RecoverGroup when
// the group had not got past them) one after another: each is created,
// started, waited for, its exit recorded in its labels and its task deleted.
// The stopped containers stay until the group goes, so that Status reports
// their last run and Logs reads their output. record.InitPending says the
// containers have not been started yet, so that a berth restarted midway
// runs them again, and one restarted later does not.

// labelInit marks an init container.
const labelInit = "berth.init"

// pullImages pulls the images of the init containers and then of the
// containers, in order, returning them by container name.
func (r *Runtime) pullImages(ctx context.Context, spec runtime.GroupSpec) (map[string]client.Image, error) {
	images := map[string]client.Image{}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		img, err := r.pullImage(ctx, spec, c.Name, c.Image)
		if err != nil {
			return nil, err
		}
		images[c.Name] = img
	}
	return images, nil
}

// runInitContainers runs spec's init containers in order, each to
// completion, replacing any earlier run. The first that cannot start or
// exits non-zero stops the sequence: the error wraps runtime.ErrInitContainer
// and names it.
func (r *Runtime) runInitContainers(ctx context.Context, rec *record, spec runtime.GroupSpec, images map[string]client.Image) error {
	for _, c := range spec.InitContainers {
		if err := r.runInit(ctx, rec, spec, c, images[c.Name]); err != nil {
			return fmt.Errorf("group %q: init container %q: %w", spec.ID, c.Name, err)
		}
	}
	return nil
}

func (r *Runtime) runInit(ctx context.Context, rec *record, spec runtime.GroupSpec, c runtime.ContainerSpec, img client.Image) error {
	failed := func(err error) error { return fmt.Errorf("%w: %w", runtime.ErrInitContainer, err) }
	cont, err := r.createContainer(ctx, rec, spec, c, img, true)
	if err != nil {
		return failed(err)
	}
	if err := r.startTask(ctx, spec.ID, c.Name, cont, 0); err != nil {
		return failed(err)
	}
	task, err := cont.Task(ctx, nil)
	if err != nil {
		return failed(fmt.Errorf("load task: %w", err))
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		return failed(fmt.Errorf("wait task: %w", err))
	}
	var st client.ExitStatus
	select {
	case st = <-exited:
	case <-ctx.Done():
		return failed(ctx.Err())
	}
	if err := st.Error(); err != nil {
		return failed(fmt.Errorf("wait task: %w", err))
	}
	info, err := cont.Info(ctx) // refreshed: startTask labelled it
	if err != nil {
		return failed(err)
	}
	bk := parseBookkeeping(info.Labels)
	code := int(st.ExitCode())
	term := terminated(bk.started, st.ExitTime(), code)
	if code == oomExitCode && oomKilled(ctx, cont) {
		term.DetailStatus = detailOOMKilled
	}
	if _, err := cont.SetLabels(ctx, map[string]string{labelExited: formatState(&term)}); err != nil {
		return failed(fmt.Errorf("record exit: %w", err))
	}
	r.emit(spec.ID, c.Name, runtime.EventExited, fmt.Sprintf("Container exited with code %d", code), false, code)
	if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		return failed(fmt.Errorf("delete task: %w", err))
	}
	if code != 0 {
		return failed(fmt.Errorf("exited with code %d (%s)", code, term.DetailStatus))
	}
	return nil
}

// initDone records that the init containers have all completed.
func (r *Runtime) initDone(rec *record) error {
	if !rec.InitPending {
		return nil
	}
	rec.InitPending = false
	if err := r.writeRecord(rec, false); err != nil {
		return fmt.Errorf("group %q: %w", rec.ID, err)
	}
	return nil
}
