package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"

	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/containerd/logdriver"
)

// taskLog is the IO of a container's task: its stdout and stderr go to the
// log driver (berth's own binary, run by the shim), which stamps and
// rotates them into the container's log file.
func (r *Runtime) taskLog(groupID, cid string) cio.Creator {
	return cio.BinaryIO(r.cfg.LogDriver, logdriver.Args(r.driverLogPath(groupID, cid)))
}

// driverLogPath is the log driver's file of container cid (logPath is the
// plain file earlier berths wrote with cio.LogFile).
func (r *Runtime) driverLogPath(groupID, cid string) string {
	return filepath.Join(r.groupDir(groupID), "logs", cid+".cri")
}

// Logs streams a container's log (see runtime.Runtime): the plain file of
// earlier berths if there is one, then the driver's rotated and current
// files.
func (r *Runtime) Logs(ctx context.Context, id, container string, opts runtime.LogOptions) (io.ReadCloser, error) {
	rec, err := r.readRecord(id)
	if err != nil {
		return nil, err
	}
	if !rec.hasContainer(container) {
		return nil, fmt.Errorf("container %q in group %q: %w", container, id, runtime.ErrNotFound)
	}
	cid := containerID(id, container)
	src := logdriver.Source{
		File:   r.driverLogPath(id, cid),
		Legacy: r.logPath(id, cid),
		Gone: func() bool {
			_, err := os.Stat(r.recordPath(id))
			return errors.Is(err, os.ErrNotExist)
		},
	}
	if !opts.Follow && logdriver.Writing(src.File) && !r.taskRunning(ctx, cid) {
		// The task ended: its driver is writing the last lines and exits
		// once the shim closes its streams (its task is deleted).
		wctx, cancel := context.WithTimeout(ctx, logDrainTimeout)
		_ = logdriver.WaitIdle(wctx, src.File)
		cancel()
	}
	return logdriver.Open(ctx, src, logdriver.Options{Tail: opts.Tail, Timestamps: opts.Timestamps, Follow: opts.Follow}), nil
}

// logDrainTimeout bounds how long Logs waits for the driver of a finished
// task.
const logDrainTimeout = 5 * time.Second

// taskRunning reports whether container cid has a running task.
func (r *Runtime) taskRunning(ctx context.Context, cid string) bool {
	resp, err := r.client.TaskService().Get(r.nsctx(ctx), &tasks.GetRequest{ContainerID: cid})
	return err == nil && resp.GetProcess().GetStatus() == tasktypes.Status_RUNNING
}

// isContainer reports whether the group has a container (not an init
// container: those cannot be exec'd into) called name.
func isContainer(rec *record, name string) bool {
	return slices.Contains(rec.Containers, name)
}
