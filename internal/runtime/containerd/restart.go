package containerd

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/berth-dev/berth/internal/runtime"
)

// RestartGroup restarts a group in place (see runtime.Runtime): the images
// are pulled again first (a new image behind a tag is picked up; a failed
// pull changes nothing), then every running container is stopped (Killing),
// the init containers run again, and the containers are recreated from spec
// and started, each keeping its restart count, with the run that was stopped
// as its previous state. The sandbox and address stay (a vanished sandbox
// is recreated). ErrNotFound for an unknown group.
func (r *Runtime) RestartGroup(ctx context.Context, spec runtime.GroupSpec) (runtime.GroupStatus, error) {
	if err := validateSpec(spec); err != nil {
		return runtime.GroupStatus{}, err
	}
	if err := r.checkGPUs(spec); err != nil {
		return runtime.GroupStatus{}, err
	}
	g, err := r.lockGroup(spec.ID)
	if err != nil {
		return runtime.GroupStatus{}, err
	}
	defer g.op.Unlock()
	ctx = r.nsctx(ctx)

	old, err := r.readRecord(spec.ID)
	if err != nil {
		if errors.Is(err, runtime.ErrNotFound) {
			r.forgetGroup(spec.ID, g)
		}
		return runtime.GroupStatus{}, err
	}
	images, err := r.pullImages(ctx, spec)
	if err != nil {
		return runtime.GroupStatus{}, err
	}

	g.stopWatchers()
	prev, err := r.stopGroup(ctx, spec.ID)
	if err != nil {
		return runtime.GroupStatus{}, fmt.Errorf("group %q: %w", spec.ID, err)
	}

	rec := newRecord(spec)
	rec.IP, rec.Bridge = old.IP, old.Bridge
	if rec.IP == "" || !netNSMounted(r.netnsPath(spec.ID)) {
		if err := r.releaseSandbox(ctx, spec.ID); err != nil {
			return runtime.GroupStatus{}, fmt.Errorf("group %q: %w", spec.ID, err)
		}
		rec.IP = ""
		if err := r.setupSandbox(ctx, rec); err != nil {
			return runtime.GroupStatus{}, fmt.Errorf("group %q: sandbox: %w", spec.ID, err)
		}
	} else if err := r.writeRecord(rec, false); err != nil {
		return runtime.GroupStatus{}, fmt.Errorf("group %q: %w", spec.ID, err)
	}
	r.startForwards(spec.ID, g, spec) // the declared ports may have changed
	if err := r.prepareVolumes(ctx, spec, volumesRestart); err != nil {
		return runtime.GroupStatus{}, err
	}
	if err := r.writeResolvConf(spec, rec); err != nil {
		return runtime.GroupStatus{}, fmt.Errorf("group %q: resolv.conf: %w", spec.ID, err)
	}
	if err := r.removeOthers(ctx, rec); err != nil {
		return runtime.GroupStatus{}, fmt.Errorf("group %q: %w", spec.ID, err)
	}

	if err := r.runInitContainers(ctx, rec, spec, images); err != nil {
		return runtime.GroupStatus{}, err
	}
	if err := r.initDone(rec); err != nil {
		return runtime.GroupStatus{}, err
	}
	for _, c := range spec.Containers {
		cont, err := r.createContainer(ctx, rec, spec, c, images[c.Name], false)
		if err == nil {
			p := prev[c.Name]
			_, err = cont.SetLabels(ctx, map[string]string{labelPrevious: formatState(p.previous)})
			if err == nil {
				err = r.startTask(ctx, spec.ID, c.Name, cont, p.restarts)
			}
		}
		if err != nil {
			return runtime.GroupStatus{}, fmt.Errorf("group %q: container %q: %w", spec.ID, c.Name, err)
		}
	}
	for _, c := range spec.Containers {
		r.startWatcher(g, spec.ID, c.Name, spec.RestartPolicy)
	}
	return r.status(ctx, rec)
}

// stopGroup stops every task of group id (init containers included), records
// each run's end in its container's labels, and returns per container name
// its restart count and the state to report as previous once it runs again.
func (r *Runtime) stopGroup(ctx context.Context, id string) (map[string]bookkeeping, error) {
	conts, err := r.client.Containers(ctx, groupFilter(id))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := map[string]bookkeeping{}
	for _, cont := range conts {
		info, err := cont.Info(ctx, client.WithoutRefreshedMetadata)
		if err != nil {
			return nil, err
		}
		name := info.Labels[labelName]
		bk := parseBookkeeping(info.Labels)
		task, err := cont.Task(ctx, nil)
		switch {
		case errdefs.IsNotFound(err): // exited and handled, or waiting to restart
			if bk.exited != nil {
				bk.previous = bk.exited
			}
		case err != nil:
			return nil, fmt.Errorf("container %q: load task: %w", name, err)
		default:
			es, err := r.stopTaskStatus(ctx, id, name, task)
			if err != nil {
				return nil, fmt.Errorf("container %q: %w", name, err)
			}
			if es != nil {
				term := terminated(bk.started, es.ExitTime(), int(es.ExitCode()))
				if bk.exited != nil && bk.exited.FinishTime.Equal(term.FinishTime) {
					term = *bk.exited
				}
				bk.previous = &term
				if _, err := cont.SetLabels(ctx, map[string]string{labelExited: formatState(&term), labelWaitUntil: ""}); err != nil {
					return nil, fmt.Errorf("container %q: record exit: %w", name, err)
				}
			}
		}
		out[name] = bk
	}
	return out, nil
}

// removeOthers removes the group's containers that rec does not name.
func (r *Runtime) removeOthers(ctx context.Context, rec *record) error {
	conts, err := r.client.Containers(ctx, groupFilter(rec.ID))
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, c := range conts {
		info, err := c.Info(ctx, client.WithoutRefreshedMetadata)
		if err != nil {
			return err
		}
		if !rec.hasContainer(info.Labels[labelName]) {
			if err := r.removeContainer(ctx, rec.ID, c); err != nil {
				return err
			}
		}
	}
	return nil
}
