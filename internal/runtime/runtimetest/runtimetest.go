// Package runtimetest is the conformance suite for runtime.Runtime
// implementations. Every implementation runs it in one line:
//
//	runtimetest.Suite(t, runtimetest.Env{Runtime: rt, Image: ref, MissingImage: missing})
//
// The image must be berth's test image (internal/testutil/testimage), whose
// modes the subtests use. Subtests run in parallel on the one runtime, each
// with its own group ids, and delete what they create. Waits are bounded by
// generous deadlines; nothing asserts on durations.
package runtimetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/runtime"
)

// Env is what the suite runs against.
type Env struct {
	Runtime runtime.Runtime
	// Image is a pullable reference to the test image.
	Image string
	// Credentials are given with every group (for Image's registry).
	Credentials []runtime.RegistryCredential
	// MissingImage is a reference whose pull fails (unknown repository or
	// tag on a reachable registry).
	MissingImage string
	// HostGPUs is how many GPUs the runtime can give a container (0: it
	// runs GPU containers without one, with a Warning event).
	HostGPUs int
}

// Timeout bounds every wait of the suite.
const Timeout = 2 * time.Minute

// Suite runs the conformance tests as subtests of t.
func Suite(t *testing.T, env Env) {
	tests := []struct {
		name string
		fn   func(*testing.T, Env)
	}{
		{"CreateStatusDelete", testCreateStatusDelete},
		{"CreateExisting", testCreateExisting},
		{"UnknownGroup", testUnknownGroup},
		{"EchoLogs", testEchoLogs},
		{"LogsTail", testLogsTail},
		{"ExitNever", testExitNever},
		{"OnFailureRestarts", testOnFailureRestarts},
		{"OnFailureSucceeds", testOnFailureSucceeds},
		{"AlwaysRestarts", testAlwaysRestarts},
		{"PullFailure", testPullFailure},
		{"Events", testEvents},
		{"MultipleContainers", testMultipleContainers},
		{"RecoverIdempotent", testRecoverIdempotent},
	}
	tests = append(tests, coreTests...)
	tests = append(tests, execTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, env)
		})
	}
}

// GroupID returns a fresh group id with a readable prefix.
func GroupID(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return strings.ToLower(prefix) + "-" + hex.EncodeToString(b)
}

// Spec is a one-container group running the test image with args (the
// image's default command if none).
func (e Env) Spec(id string, policy runtime.RestartPolicy, args ...string) runtime.GroupSpec {
	c := runtime.ContainerSpec{Name: "main", Image: e.Image}
	if len(args) > 0 {
		c.Command = append([]string{"/app"}, args...)
	}
	return runtime.GroupSpec{ID: id, RestartPolicy: policy, Containers: []runtime.ContainerSpec{c}, Credentials: e.Credentials}
}

// Create creates spec and deletes it when the test ends.
func Create(t *testing.T, rt runtime.Runtime, spec runtime.GroupSpec) runtime.GroupStatus {
	t.Helper()
	st, err := rt.CreateGroup(context.Background(), spec)
	t.Cleanup(func() {
		if err := rt.DeleteGroup(context.Background(), spec.ID); err != nil {
			t.Errorf("cleanup: delete %s: %v", spec.ID, err)
		}
	})
	if err != nil {
		t.Fatalf("CreateGroup(%s): %v", spec.ID, err)
	}
	return st
}

// WaitStatus polls Status until ok accepts it, failing the test after
// Timeout.
func WaitStatus(t *testing.T, rt runtime.Runtime, id string, what string, ok func(runtime.GroupStatus) bool) runtime.GroupStatus {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	var last runtime.GroupStatus
	var lastErr error
	for time.Now().Before(deadline) {
		last, lastErr = rt.Status(context.Background(), id)
		if lastErr == nil && ok(last) {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("group %s: timed out waiting for %s; last status %+v, err %v", id, what, last, lastErr)
	return last
}

// Terminated reports whether the first container is terminated.
func Terminated(st runtime.GroupStatus) bool {
	return len(st.Containers) > 0 && st.Containers[0].Current.State == runtime.StateTerminated
}

// Running reports whether every container is running.
func Running(st runtime.GroupStatus) bool {
	for _, c := range st.Containers {
		if c.Current.State != runtime.StateRunning {
			return false
		}
	}
	return len(st.Containers) > 0
}

func testCreateStatusDelete(t *testing.T, e Env) {
	ctx := context.Background()
	rt := e.Runtime
	spec := e.Spec(GroupID("csd"), runtime.RestartAlways)
	spec.Labels = map[string]string{"purpose": "test"}
	spec.Containers[0].Env = []runtime.EnvVar{{Name: "GREETING", Value: "hello"}}
	spec.Containers[0].Ports = []runtime.Port{{Port: 8080, Protocol: "TCP"}}
	spec.Containers[0].CPU = 0.5
	spec.Containers[0].MemoryBytes = 256 << 20

	st, err := rt.CreateGroup(ctx, spec)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if st.ID != spec.ID || st.IP == "" || len(st.Containers) != 1 || st.Containers[0].Name != "main" {
		t.Fatalf("CreateGroup status = %+v", st)
	}
	st = WaitStatus(t, rt, spec.ID, "running", Running)
	c := st.Containers[0]
	if c.Current.StartTime.IsZero() || c.RestartCount != 0 || c.Previous != nil {
		t.Errorf("running container status = %+v", c)
	}
	listed := func() bool {
		ids, err := rt.ListGroups(ctx)
		if err != nil {
			t.Fatalf("ListGroups: %v", err)
		}
		return slices.Contains(ids, spec.ID)
	}
	if !listed() {
		t.Errorf("ListGroups does not list %s", spec.ID)
	}

	if err := rt.DeleteGroup(ctx, spec.ID); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	if listed() {
		t.Errorf("ListGroups lists %s after delete", spec.ID)
	}
	if _, err := rt.Status(ctx, spec.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Status after delete: err = %v, want ErrNotFound", err)
	}
	if _, err := runtime.ReadLogs(ctx, rt, spec.ID, "main", runtime.LogOptions{}); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Logs after delete: err = %v, want ErrNotFound", err)
	}
	if err := rt.DeleteGroup(ctx, spec.ID); err != nil {
		t.Errorf("second DeleteGroup: %v", err)
	}
}

func testCreateExisting(t *testing.T, e Env) {
	spec := e.Spec(GroupID("dup"), runtime.RestartNever)
	Create(t, e.Runtime, spec)
	if _, err := e.Runtime.CreateGroup(context.Background(), spec); err == nil {
		t.Fatal("second CreateGroup with the same id succeeded")
	}
	WaitStatus(t, e.Runtime, spec.ID, "running", Running)
}

func testUnknownGroup(t *testing.T, e Env) {
	ctx := context.Background()
	id := GroupID("unknown")
	if _, err := e.Runtime.Status(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Status: err = %v, want ErrNotFound", err)
	}
	if _, err := runtime.ReadLogs(ctx, e.Runtime, id, "main", runtime.LogOptions{}); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Logs: err = %v, want ErrNotFound", err)
	}
	if err := e.Runtime.DeleteGroup(ctx, id); err != nil {
		t.Errorf("DeleteGroup: %v", err)
	}
}

func testEchoLogs(t *testing.T, e Env) {
	spec := e.Spec(GroupID("echo"), runtime.RestartNever, "echo", "hello", "world")
	Create(t, e.Runtime, spec)
	st := WaitStatus(t, e.Runtime, spec.ID, "terminated", Terminated)
	c := st.Containers[0]
	if c.Current.ExitCode != 0 || c.Current.DetailStatus != "Completed" || c.RestartCount != 0 {
		t.Errorf("status = %+v", c)
	}
	if c.Current.StartTime.IsZero() || c.Current.FinishTime.IsZero() || c.Current.FinishTime.Before(c.Current.StartTime) {
		t.Errorf("times: start %v finish %v", c.Current.StartTime, c.Current.FinishTime)
	}
	logs, err := runtime.ReadLogs(context.Background(), e.Runtime, spec.ID, "main", runtime.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(logs) != "hello world\n" {
		t.Errorf("logs = %q, want %q", logs, "hello world\n")
	}
	if _, err := runtime.ReadLogs(context.Background(), e.Runtime, spec.ID, "nope", runtime.LogOptions{}); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Logs of unknown container: err = %v, want ErrNotFound", err)
	}
}

func testLogsTail(t *testing.T, e Env) {
	spec := e.Spec(GroupID("tail"), runtime.RestartNever, "print-env")
	spec.Containers[0].Env = []runtime.EnvVar{{Name: "AAA_FIRST", Value: "1"}, {Name: "ZZZ_LAST", Value: "end"}}
	Create(t, e.Runtime, spec)
	WaitStatus(t, e.Runtime, spec.ID, "terminated", Terminated)
	all, err := runtime.ReadLogs(context.Background(), e.Runtime, spec.ID, "main", runtime.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(all), "AAA_FIRST=1\n") || !strings.Contains(string(all), "ZZZ_LAST=end\n") {
		t.Errorf("logs lack the environment: %q", all)
	}
	last, err := runtime.ReadLogs(context.Background(), e.Runtime, spec.ID, "main", runtime.LogOptions{Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	if string(last) != "ZZZ_LAST=end\n" {
		t.Errorf("tail 1 = %q, want %q", last, "ZZZ_LAST=end\n")
	}
	two, err := runtime.ReadLogs(context.Background(), e.Runtime, spec.ID, "main", runtime.LogOptions{Tail: 2})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(two), "\n"); n != 2 || !strings.HasSuffix(string(two), "ZZZ_LAST=end\n") {
		t.Errorf("tail 2 = %q", two)
	}
}

func testExitNever(t *testing.T, e Env) {
	spec := e.Spec(GroupID("never"), runtime.RestartNever, "exit", "3")
	Create(t, e.Runtime, spec)
	st := WaitStatus(t, e.Runtime, spec.ID, "terminated", Terminated)
	c := st.Containers[0]
	if c.Current.ExitCode != 3 || c.Current.DetailStatus != "Error" || c.RestartCount != 0 || c.Previous != nil {
		t.Errorf("status = %+v", c)
	}
}

func testOnFailureRestarts(t *testing.T, e Env) {
	spec := e.Spec(GroupID("onfail"), runtime.RestartOnFailure, "exit", "1")
	Create(t, e.Runtime, spec)
	st := WaitStatus(t, e.Runtime, spec.ID, "two restarts", func(st runtime.GroupStatus) bool {
		return st.Containers[0].RestartCount >= 2
	})
	c := st.Containers[0]
	if c.Previous == nil || c.Previous.State != runtime.StateTerminated || c.Previous.ExitCode != 1 || c.Previous.DetailStatus != "Error" {
		t.Errorf("previous state = %+v", c.Previous)
	}
}

func testOnFailureSucceeds(t *testing.T, e Env) {
	spec := e.Spec(GroupID("onok"), runtime.RestartOnFailure, "exit", "0")
	Create(t, e.Runtime, spec)
	st := WaitStatus(t, e.Runtime, spec.ID, "terminated", Terminated)
	if c := st.Containers[0]; c.Current.ExitCode != 0 || c.Current.DetailStatus != "Completed" || c.RestartCount != 0 {
		t.Errorf("status = %+v", c)
	}
}

func testAlwaysRestarts(t *testing.T, e Env) {
	spec := e.Spec(GroupID("always"), runtime.RestartAlways, "exit", "0")
	Create(t, e.Runtime, spec)
	st := WaitStatus(t, e.Runtime, spec.ID, "a restart", func(st runtime.GroupStatus) bool {
		return st.Containers[0].RestartCount >= 1
	})
	if p := st.Containers[0].Previous; p == nil || p.ExitCode != 0 || p.DetailStatus != "Completed" {
		t.Errorf("previous state = %+v", p)
	}
}

func testPullFailure(t *testing.T, e Env) {
	events, cancel := e.Runtime.Subscribe()
	defer cancel()
	spec := e.Spec(GroupID("pullfail"), runtime.RestartNever)
	spec.Containers[0].Image = e.MissingImage
	_, err := e.Runtime.CreateGroup(context.Background(), spec)
	if !errors.Is(err, runtime.ErrImagePull) {
		t.Fatalf("CreateGroup: err = %v, want ErrImagePull", err)
	}
	if !strings.Contains(err.Error(), e.MissingImage) {
		t.Errorf("error %q does not name the image", err)
	}
	if _, err := e.Runtime.Status(context.Background(), spec.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Status after failed create: err = %v, want ErrNotFound", err)
	}
	got := Collect(t, events, spec.ID, func(evs []runtime.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Kind == runtime.EventFailed
	})
	if got[0].Kind != runtime.EventPulling || !strings.Contains(got[0].Message, e.MissingImage) {
		t.Errorf("first event = %+v, want Pulling", got[0])
	}
	if f := got[len(got)-1]; !f.Warning || !strings.Contains(f.Message, e.MissingImage) {
		t.Errorf("Failed event = %+v", f)
	}
	if err := e.Runtime.DeleteGroup(context.Background(), spec.ID); err != nil {
		t.Errorf("DeleteGroup after failed create: %v", err)
	}
}

func testEvents(t *testing.T, e Env) {
	events, cancel := e.Runtime.Subscribe()
	defer cancel()
	spec := e.Spec(GroupID("events"), runtime.RestartNever, "exit", "4")
	Create(t, e.Runtime, spec)
	got := Collect(t, events, spec.ID, func(evs []runtime.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Kind == runtime.EventExited
	})
	var kinds []string
	for _, ev := range got {
		kinds = append(kinds, string(ev.Kind))
		if ev.Container != "main" || ev.Time.IsZero() {
			t.Errorf("event %+v: want container main and a time", ev)
		}
	}
	if want := "Pulling Pulled Started Exited"; strings.Join(kinds, " ") != want {
		t.Errorf("events = %v, want %s", kinds, want)
	}
	if ev := got[0]; ev.Message != `pulling image "`+e.Image+`"` {
		t.Errorf("Pulling message = %q", ev.Message)
	}
	if ev := got[1]; ev.Message != `Successfully pulled image "`+e.Image+`"` {
		t.Errorf("Pulled message = %q", ev.Message)
	}
	if ev := got[len(got)-1]; ev.ExitCode != 4 {
		t.Errorf("Exited event code = %d, want 4", ev.ExitCode)
	}
}

func testMultipleContainers(t *testing.T, e Env) {
	spec := e.Spec(GroupID("multi"), runtime.RestartNever)
	spec.Containers = append(spec.Containers, runtime.ContainerSpec{
		Name: "sidecar", Image: e.Image, Command: []string{"/app", "sleep", "600"},
	})
	st := Create(t, e.Runtime, spec)
	if len(st.Containers) != 2 || st.Containers[0].Name != "main" || st.Containers[1].Name != "sidecar" {
		t.Fatalf("containers = %+v, want main, sidecar", st.Containers)
	}
	WaitStatus(t, e.Runtime, spec.ID, "both running", Running)
}

func testRecoverIdempotent(t *testing.T, e Env) {
	spec := e.Spec(GroupID("recover"), runtime.RestartAlways)
	first := Create(t, e.Runtime, spec)
	WaitStatus(t, e.Runtime, spec.ID, "running", Running)
	for i := 0; i < 2; i++ {
		st, err := e.Runtime.RecoverGroup(context.Background(), spec)
		if err != nil {
			t.Fatalf("RecoverGroup #%d: %v", i+1, err)
		}
		if st.IP != first.IP || !Running(st) || st.Containers[0].RestartCount != 0 {
			t.Errorf("RecoverGroup #%d status = %+v (created with IP %s)", i+1, st, first.IP)
		}
	}
}

// Collect reads events of group id until done accepts what was collected,
// failing the test after Timeout.
func Collect(t *testing.T, events <-chan runtime.Event, id string, done func([]runtime.Event) bool) []runtime.Event {
	t.Helper()
	var got []runtime.Event
	timeout := time.After(Timeout)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("event stream closed; got %+v", got)
			}
			if ev.GroupID != id {
				continue
			}
			got = append(got, ev)
			if done(got) {
				return got
			}
		case <-timeout:
			t.Fatalf("timed out collecting events of %s; got %+v", id, got)
		}
	}
}
