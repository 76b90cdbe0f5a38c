package containerd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"github.com/containerd/containerd/v2/pkg/identifiers"

	"github.com/berth-dev/berth/internal/runtime"
)

// Labels on each containerd container. They hold what containerd does not
// know about a container (which group it belongs to, restart bookkeeping) so
// that Status and recovery after a berth restart read it back from
// containerd. Empty values mean unset.
const (
	labelGroup     = "berth.group"      // group id
	labelName      = "berth.container"  // container name in the group
	labelStarted   = "berth.started"    // RFC 3339 start time of the current task
	labelRestarts  = "berth.restarts"   // restart count
	labelPrevious  = "berth.previous"   // JSON ContainerState: the run before this one
	labelExited    = "berth.exited"     // JSON ContainerState: the current task's exit, once handled
	labelBackOff   = "berth.backoff"    // last back-off delay (Go duration)
	labelWaitUntil = "berth.wait-until" // RFC 3339 end of the back-off being waited
)

// ownLabels are the keys above; a group's own labels cannot override them.
var ownLabels = map[string]bool{
	labelGroup: true, labelName: true, labelStarted: true, labelRestarts: true,
	labelPrevious: true, labelExited: true, labelBackOff: true, labelWaitUntil: true,
}

// bookkeeping is the restart state kept in a container's labels.
type bookkeeping struct {
	started   time.Time
	restarts  int
	previous  *runtime.ContainerState
	exited    *runtime.ContainerState
	backOff   time.Duration
	waitUntil time.Time
}

func parseBookkeeping(labels map[string]string) bookkeeping {
	var b bookkeeping
	b.started = parseTime(labels[labelStarted])
	b.restarts, _ = strconv.Atoi(labels[labelRestarts])
	b.previous = parseState(labels[labelPrevious])
	b.exited = parseState(labels[labelExited])
	b.backOff, _ = time.ParseDuration(labels[labelBackOff])
	b.waitUntil = parseTime(labels[labelWaitUntil])
	return b
}

// labels returns b as label updates (every key, empty ones clearing).
func (b bookkeeping) labels() map[string]string {
	m := map[string]string{
		labelStarted:   formatTime(b.started),
		labelRestarts:  strconv.Itoa(b.restarts),
		labelPrevious:  formatState(b.previous),
		labelExited:    formatState(b.exited),
		labelBackOff:   "",
		labelWaitUntil: formatTime(b.waitUntil),
	}
	if b.backOff > 0 {
		m[labelBackOff] = b.backOff.String()
	}
	return m
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseState(s string) *runtime.ContainerState {
	if s == "" {
		return nil
	}
	var st runtime.ContainerState
	if json.Unmarshal([]byte(s), &st) != nil {
		return nil
	}
	return &st
}

func formatState(st *runtime.ContainerState) string {
	if st == nil {
		return ""
	}
	b, _ := json.Marshal(st)
	return string(b)
}

// terminated is the state of a run that exited with code.
func terminated(start, finish time.Time, code int) runtime.ContainerState {
	d := "Completed"
	if code != 0 {
		d = "Error"
	}
	return runtime.ContainerState{State: runtime.StateTerminated, StartTime: start, FinishTime: finish, ExitCode: code, DetailStatus: d}
}

// shouldRestart applies the restart policy to an exit code.
func shouldRestart(p runtime.RestartPolicy, code int) bool {
	switch p {
	case runtime.RestartNever:
		return false
	case runtime.RestartOnFailure:
		return code != 0
	default: // Always, and ACI's default when unset
		return true
	}
}

// containerID is the containerd id of a group's container: "<group>.<name>"
// when that is a valid containerd identifier, else a digest of both.
func containerID(group, name string) string {
	id := group + "." + name
	if identifiers.Validate(id) == nil {
		return id
	}
	sum := sha256.Sum256([]byte(group + "\x00" + name))
	return "c" + hex.EncodeToString(sum[:16])
}
