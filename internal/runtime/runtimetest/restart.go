package runtimetest

import (
	"context"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/runtime"
)

// testRestartGroup: RestartGroup stops the running containers (Killing),
// runs the init containers again and starts the containers again, in the
// same sandbox (same address), keeping restart counts.
func testRestartGroup(t *testing.T, e Env) {
	ctx := context.Background()
	spec := e.Spec(GroupID("restart"), runtime.RestartAlways)
	spec.InitContainers = []runtime.ContainerSpec{e.App("setup", "echo", "init ran")}
	spec.Containers = append(spec.Containers, e.App("flaky", "exit", "0")) // restarts by itself
	first := Create(t, e.Runtime, spec)
	before := WaitStatus(t, e.Runtime, spec.ID, "main running, flaky restarted", func(st runtime.GroupStatus) bool {
		return st.Containers[0].Current.State == runtime.StateRunning && st.Containers[1].RestartCount >= 1
	})

	events, cancel := e.Runtime.Subscribe()
	defer cancel()
	st, err := e.Runtime.RestartGroup(ctx, spec)
	if err != nil {
		t.Fatalf("RestartGroup: %v", err)
	}
	if st.IP != first.IP {
		t.Errorf("IP after restart = %s, was %s", st.IP, first.IP)
	}
	got := Drain(events, spec.ID)
	seq := describe(got)
	kill := strings.Index(seq, "main:Killing")
	setup := strings.Index(seq, "setup:Started")
	start := strings.LastIndex(seq, "main:Started")
	if kill < 0 || setup < kill || start < setup {
		t.Errorf("events = %s, want main:Killing, then setup:Started, then main:Started", seq)
	}
	if len(st.InitContainers) != 1 || st.InitContainers[0].Current.State != runtime.StateTerminated || st.InitContainers[0].Current.ExitCode != 0 {
		t.Errorf("init containers after restart = %+v", st.InitContainers)
	}
	st = WaitStatus(t, e.Runtime, spec.ID, "main running", func(st runtime.GroupStatus) bool {
		return st.Containers[0].Current.State == runtime.StateRunning
	})
	if st.Containers[0].RestartCount != before.Containers[0].RestartCount {
		t.Errorf("main restart count = %d after restart, was %d", st.Containers[0].RestartCount, before.Containers[0].RestartCount)
	}
	if st.Containers[1].RestartCount < before.Containers[1].RestartCount {
		t.Errorf("flaky restart count = %d after restart, was %d: not kept", st.Containers[1].RestartCount, before.Containers[1].RestartCount)
	}
	if n := strings.Count(Logs(t, e.Runtime, spec.ID, "setup"), "init ran\n"); n != 2 {
		t.Errorf("the init container ran %d times, want 2", n)
	}
	if st.IP != first.IP {
		t.Errorf("IP = %s, was %s", st.IP, first.IP)
	}
}

func testRestartUnknownGroup(t *testing.T, e Env) {
	spec := e.Spec(GroupID("norestart"), runtime.RestartAlways)
	_, err := e.Runtime.RestartGroup(context.Background(), spec)
	wantErrIs(t, "RestartGroup of an unknown group", err, runtime.ErrNotFound)
	if _, err := e.Runtime.Status(context.Background(), spec.ID); err == nil {
		t.Error("RestartGroup created the unknown group")
	}
}
