package runtimetest

import (
	"context"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/runtime"
)

// testInitContainers: init containers run in order, each to completion,
// before the containers; the second sees what the first wrote in a shared
// emptyDir, and so does the container. Their status, logs and events are
// reported.
func testInitContainers(t *testing.T, e Env) {
	events, cancel := e.Runtime.Subscribe()
	defer cancel()
	work := []runtime.Mount{{Volume: "work", Path: "/work"}}
	spec := e.Spec(GroupID("init"), runtime.RestartNever, "read", "/work/first")
	spec.Volumes = []runtime.VolumeSpec{{Name: "work", Kind: runtime.VolumeEmptyDir}}
	spec.Containers[0].Mounts = work
	first, second := e.App("first", "write", "/work/first", "one"), e.App("second", "read", "/work/first")
	first.Mounts, second.Mounts = work, work
	spec.InitContainers = []runtime.ContainerSpec{first, second}

	st := Create(t, e.Runtime, spec)
	if len(st.InitContainers) != 2 || st.InitContainers[0].Name != "first" || st.InitContainers[1].Name != "second" {
		t.Fatalf("init containers = %+v, want first, second", st.InitContainers)
	}
	for _, c := range st.InitContainers {
		cur := c.Current
		if cur.State != runtime.StateTerminated || cur.ExitCode != 0 || cur.DetailStatus != "Completed" || c.RestartCount != 0 {
			t.Errorf("init container %s: %+v", c.Name, c)
		}
		if cur.StartTime.IsZero() || cur.FinishTime.IsZero() || cur.FinishTime.Before(cur.StartTime) {
			t.Errorf("init container %s times: start %v finish %v", c.Name, cur.StartTime, cur.FinishTime)
		}
	}
	if a, b := st.InitContainers[0].Current, st.InitContainers[1].Current; b.StartTime.Before(a.FinishTime) {
		t.Errorf("second init container started (%v) before the first finished (%v)", b.StartTime, a.FinishTime)
	}
	st = WaitStatus(t, e.Runtime, spec.ID, "terminated", Terminated)
	if code := exitCode(t, st, "main"); code != 0 {
		t.Errorf("main exited %d", code)
	}
	wantLogs(t, e.Runtime, spec.ID, "first", "wrote /work/first\n")
	wantLogs(t, e.Runtime, spec.ID, "second", "one")
	wantLogs(t, e.Runtime, spec.ID, "main", "one")

	got := Collect(t, events, spec.ID, func(evs []runtime.Event) bool {
		last := evs[len(evs)-1]
		return last.Container == "main" && last.Kind == runtime.EventExited
	})
	var order []string
	pulled := map[string]bool{}
	for _, ev := range got {
		switch ev.Kind {
		case runtime.EventStarted, runtime.EventExited:
			order = append(order, ev.Container+":"+string(ev.Kind))
		case runtime.EventPulled:
			pulled[ev.Container] = true
		}
	}
	if got, want := strings.Join(order, " "), "first:Started first:Exited second:Started second:Exited main:Started main:Exited"; got != want {
		t.Errorf("start/exit order = %s, want %s", got, want)
	}
	for _, c := range []string{"first", "second", "main"} {
		if !pulled[c] {
			t.Errorf("no Pulled event for %s; events: %s", c, describe(got))
		}
	}
}

// testInitContainerFails: an init container exiting non-zero fails
// CreateGroup with ErrInitContainer naming it; the next init container and
// the containers never start, and nothing of the group is left.
func testInitContainerFails(t *testing.T, e Env) {
	ctx := context.Background()
	events, cancel := e.Runtime.Subscribe()
	defer cancel()
	spec := e.Spec(GroupID("initfail"), runtime.RestartAlways)
	spec.InitContainers = []runtime.ContainerSpec{e.App("ok", "echo", "fine"), e.App("broken", "exit", "3"), e.App("later", "echo", "never")}
	_, err := e.Runtime.CreateGroup(ctx, spec)
	t.Cleanup(func() { e.Runtime.DeleteGroup(context.Background(), spec.ID) })
	wantErrIs(t, "CreateGroup", err, runtime.ErrInitContainer)
	if err == nil || !strings.Contains(err.Error(), `"broken"`) {
		t.Errorf("error %v does not name the init container", err)
	}
	if _, err := e.Runtime.Status(ctx, spec.ID); err == nil {
		t.Error("the group exists after its init container failed")
	}
	got := Drain(events, spec.ID)
	for _, ev := range got {
		if ev.Kind == runtime.EventStarted && (ev.Container == "later" || ev.Container == "main") {
			t.Errorf("%s started after an init container failed; events: %s", ev.Container, describe(got))
		}
	}
	if !strings.Contains(describe(got), "broken:Started broken:Exited") {
		t.Errorf("events = %s, want broken's start and exit", describe(got))
	}
	if err := e.Runtime.DeleteGroup(ctx, spec.ID); err != nil {
		t.Errorf("DeleteGroup after a failed create: %v", err)
	}
}
