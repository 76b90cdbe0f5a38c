package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

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
	if !hasContainer(rec, container) {
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
	return logdriver.Open(ctx, src, logdriver.Options{Tail: opts.Tail, Timestamps: opts.Timestamps, Follow: opts.Follow}), nil
}

// hasContainer reports whether the group has a container (or init
// container) called name.
func hasContainer(rec *record, name string) bool {
	return slices.Contains(rec.Containers, name)
}
