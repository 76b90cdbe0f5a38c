package runtimetest

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/runtime"
)

// testRunAsUser: runAsUser and runAsGroup set the process's ids.
func testRunAsUser(t *testing.T, e Env) {
	spec := e.Spec(GroupID("runas"), runtime.RestartNever, "id")
	spec.Containers[0].Security = &runtime.SecurityContext{RunAsUser: ptr[int64](1234), RunAsGroup: ptr[int64](4321)}
	spec.Containers = append(spec.Containers, e.App("root", "id"))
	Create(t, e.Runtime, spec)
	WaitStatus(t, e.Runtime, spec.ID, "done", AllTerminated)
	wantLogs(t, e.Runtime, spec.ID, "main", "uid=1234 gid=4321\n")
	wantLogs(t, e.Runtime, spec.ID, "root", "uid=0 gid=0\n")
}

// testGPUWarning: a container asking for a GPU on a host without one runs
// without it, with a Warning event saying so (the runtime's default GPU
// mode); with GPUs on the host there is no such warning.
func testGPUWarning(t *testing.T, e Env) {
	events, cancel := e.Runtime.Subscribe()
	defer cancel()
	spec := e.Spec(GroupID("gpu"), runtime.RestartNever, "echo", "ran")
	spec.Containers[0].GPUs = 1
	Create(t, e.Runtime, spec)
	st := WaitStatus(t, e.Runtime, spec.ID, "done", Terminated)
	if exitCode(t, st, "main") != 0 {
		t.Errorf("status = %+v", st.Containers[0])
	}
	wantLogs(t, e.Runtime, spec.ID, "main", "ran\n")
	got := Collect(t, events, spec.ID, func(evs []runtime.Event) bool {
		return evs[len(evs)-1].Kind == runtime.EventExited
	})
	var warning *runtime.Event
	for i, ev := range got {
		if ev.Kind == runtime.EventWarning {
			warning = &got[i]
		}
	}
	switch {
	case e.HostGPUs == 0 && warning == nil:
		t.Errorf("no Warning event; events: %s", describe(got))
	case e.HostGPUs == 0 && (!warning.Warning || warning.Container != "main" || !strings.Contains(warning.Message, "GPU")):
		t.Errorf("warning event = %+v", *warning)
	case e.HostGPUs > 0 && warning != nil:
		t.Errorf("a Warning event on a host with %d GPUs: %+v", e.HostGPUs, *warning)
	}
}
