package runtimetest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/runtime"
)

// execTests are the conformance tests of Exec, streamed Logs and probes.
var execTests = []struct {
	name string
	fn   func(*testing.T, Env)
}{
	{"ExecOutputAndExitCode", testExecOutputAndExitCode},
	{"ExecStdin", testExecStdin},
	{"ExecTTY", testExecTTY},
	{"ExecNotRunning", testExecNotRunning},
	{"ExecClose", testExecClose},
	{"LogsTimestamps", testLogsTimestamps},
	{"LogsFollow", testLogsFollow},
	{"LivenessRestarts", testLivenessRestarts},
	{"Readiness", testReadiness},
}

// Exec runs opts in container name of group id, feeding it stdin (then
// EOF), and returns its output and exit code.
func Exec(t *testing.T, rt runtime.Runtime, id, name string, opts runtime.ExecOptions, stdin string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	s, err := rt.Exec(ctx, id, name, opts)
	if err != nil {
		t.Fatalf("Exec %v: %v", opts.Command, err)
	}
	defer s.Close()
	go func() {
		io.WriteString(s.Stdin(), stdin)
		s.Stdin().Close()
	}()
	out, err := io.ReadAll(s.Output())
	if err != nil {
		t.Fatalf("Exec %v: reading output: %v", opts.Command, err)
	}
	code, err := s.Wait(ctx)
	if err != nil {
		t.Fatalf("Exec %v: Wait: %v", opts.Command, err)
	}
	return string(out), code
}

func testExecOutputAndExitCode(t *testing.T, e Env) {
	spec := e.Spec(GroupID("exec"), runtime.RestartNever)
	Create(t, e.Runtime, spec)
	WaitStatus(t, e.Runtime, spec.ID, "running", Running)
	for _, tc := range []struct {
		cmd  []string
		out  string
		code int
	}{
		{[]string{"true"}, "", 0},
		{[]string{"false"}, "", 1},
		{[]string{"echo", "hello", "exec"}, "hello exec\n", 0},
		{[]string{"/app", "exit", "7"}, "", 7},
		{[]string{"sh", "-c", "echo out; echo err >&2; exit 3"}, "out\nerr\n", 3},
	} {
		out, code := Exec(t, e.Runtime, spec.ID, "main", runtime.ExecOptions{Command: tc.cmd}, "")
		if sortLines(out) != sortLines(tc.out) || code != tc.code { // stdout and stderr race
			t.Errorf("exec %q: output %q, exit code %d; want %q, %d", tc.cmd, out, code, tc.out, tc.code)
		}
	}
	// The container is not disturbed.
	st := WaitStatus(t, e.Runtime, spec.ID, "running", Running)
	if st.Containers[0].RestartCount != 0 {
		t.Errorf("exec restarted the container: %+v", st.Containers[0])
	}
}

func testExecStdin(t *testing.T, e Env) {
	spec := e.Spec(GroupID("stdin"), runtime.RestartNever)
	Create(t, e.Runtime, spec)
	WaitStatus(t, e.Runtime, spec.ID, "running", Running)
	in := "first line\nsecond line\n"
	out, code := Exec(t, e.Runtime, spec.ID, "main", runtime.ExecOptions{Command: []string{"cat"}}, in)
	if out != in || code != 0 {
		t.Errorf("cat: output %q, exit code %d; want %q, 0", out, code, in)
	}
}

func testExecTTY(t *testing.T, e Env) {
	spec := e.Spec(GroupID("tty"), runtime.RestartNever)
	Create(t, e.Runtime, spec)
	WaitStatus(t, e.Runtime, spec.ID, "running", Running)
	out, code := Exec(t, e.Runtime, spec.ID, "main",
		runtime.ExecOptions{Command: []string{"stty", "size"}, TTY: true, Cols: 100, Rows: 30}, "")
	if code != 0 || strings.TrimSpace(out) != "30 100" {
		t.Errorf("stty size in a 100x30 terminal: output %q, exit code %d", out, code)
	}
	// A terminal has no end of input: the input ending (here at once) does
	// not hang up a process that is still running.
	out, code = Exec(t, e.Runtime, spec.ID, "main",
		runtime.ExecOptions{Command: []string{"sh", "-c", "sleep 1; stty size"}, TTY: true, Cols: 100, Rows: 30}, "")
	if code != 0 || strings.TrimSpace(out) != "30 100" {
		t.Errorf("sleep 1; stty size in a terminal whose input ended: output %q, exit code %d", out, code)
	}
	// ^D ends a terminal's input, as a user types it.
	out, code = Exec(t, e.Runtime, spec.ID, "main",
		runtime.ExecOptions{Command: []string{"cat"}, TTY: true, Cols: 100, Rows: 30}, "hello\n\x04")
	if code != 0 || !strings.Contains(out, "hello") {
		t.Errorf("cat in a terminal, then ^D: output %q, exit code %d", out, code)
	}
}

func testExecNotRunning(t *testing.T, e Env) {
	ctx := context.Background()
	spec := e.Spec(GroupID("execdone"), runtime.RestartNever, "exit", "0")
	Create(t, e.Runtime, spec)
	WaitStatus(t, e.Runtime, spec.ID, "terminated", Terminated)
	opts := runtime.ExecOptions{Command: []string{"true"}}
	if _, err := e.Runtime.Exec(ctx, spec.ID, "main", opts); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Exec in a terminated container: err = %v, want ErrNotFound", err)
	}
	if _, err := e.Runtime.Exec(ctx, spec.ID, "nope", opts); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Exec in an unknown container: err = %v, want ErrNotFound", err)
	}
	if _, err := e.Runtime.Exec(ctx, GroupID("nogroup"), "main", opts); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Exec in an unknown group: err = %v, want ErrNotFound", err)
	}
}

// testExecClose: closing a session kills a process that still runs.
func testExecClose(t *testing.T, e Env) {
	spec := e.Spec(GroupID("execclose"), runtime.RestartNever)
	Create(t, e.Runtime, spec)
	WaitStatus(t, e.Runtime, spec.ID, "running", Running)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	s, err := e.Runtime.Exec(ctx, spec.ID, "main", runtime.ExecOptions{Command: []string{"sleep", "600"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := io.ReadAll(s.Output()); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("output after Close: %v", err)
	}
	WaitStatus(t, e.Runtime, spec.ID, "running", Running)
}

func testLogsTimestamps(t *testing.T, e Env) {
	spec := e.Spec(GroupID("stamps"), runtime.RestartNever, "echo", "stamped")
	Create(t, e.Runtime, spec)
	st := WaitStatus(t, e.Runtime, spec.ID, "terminated", Terminated)
	logs, err := runtime.ReadLogs(context.Background(), e.Runtime, spec.ID, "main", runtime.LogOptions{Timestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	ts, rest, ok := strings.Cut(string(logs), " ")
	if !ok || rest != "stamped\n" {
		t.Fatalf("logs with timestamps = %q", logs)
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil || at.Location() != time.UTC || !strings.HasSuffix(ts, "Z") {
		t.Fatalf("time stamp %q: %v (want RFC 3339 in UTC)", ts, err)
	}
	c := st.Containers[0].Current
	// Same day as the run: the stamp is the write time, not made up.
	if at.Before(c.StartTime.Add(-time.Hour)) || at.After(c.FinishTime.Add(time.Hour)) {
		t.Errorf("time stamp %v outside the run %v–%v", at, c.StartTime, c.FinishTime)
	}
	plain, _ := runtime.ReadLogs(context.Background(), e.Runtime, spec.ID, "main", runtime.LogOptions{})
	if string(plain) != "stamped\n" {
		t.Errorf("logs without timestamps = %q", plain)
	}
}

func testLogsFollow(t *testing.T, e Env) {
	rt := e.Runtime
	spec := e.Spec(GroupID("follow"), runtime.RestartNever)
	Create(t, rt, spec)
	WaitStatus(t, rt, spec.ID, "running", Running)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	rc, err := rt.Logs(ctx, spec.ID, "main", runtime.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok || l != want {
				t.Fatalf("followed %q (open %v), want %q", l, ok, want)
			}
		case <-time.After(Timeout):
			t.Fatalf("no line %q within %v", want, Timeout)
		}
	}
	expect("listening on :8080")
	// Output written now, by a process of the container, arrives.
	for _, word := range []string{"one", "two"} {
		if _, code := Exec(t, rt, spec.ID, "main", runtime.ExecOptions{
			Command: []string{"sh", "-c", "echo " + word + " > /proc/1/fd/1"}}, ""); code != 0 {
			t.Fatalf("writing to the container's output: exit code %d", code)
		}
		expect(word)
	}
	// Deleting the group ends the stream.
	if err := rt.DeleteGroup(context.Background(), spec.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case l, ok := <-lines:
		if ok {
			t.Fatalf("followed %q after delete, want the end", l)
		}
	case <-time.After(Timeout):
		t.Fatal("the stream did not end when the group was deleted")
	}
}

func testLivenessRestarts(t *testing.T, e Env) {
	rt := e.Runtime
	events, cancel := rt.Subscribe()
	defer cancel()
	spec := e.Spec(GroupID("liveness"), runtime.RestartAlways)
	spec.Containers[0].Liveness = &runtime.Probe{Exec: []string{"false"}, PeriodSeconds: 1, FailureThreshold: 2}
	Create(t, rt, spec)
	got := Collect(t, events, spec.ID, func(evs []runtime.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Kind == runtime.EventStarted && count(evs, runtime.EventStarted) == 2
	})
	unhealthy, killing := count(got, runtime.EventUnhealthy), count(got, runtime.EventKilling)
	if unhealthy < 2 || killing != 1 {
		t.Errorf("events %v: want 2+ Unhealthy, then 1 Killing before the restart", kinds(got))
	}
	for _, ev := range got {
		if ev.Kind == runtime.EventUnhealthy && (!ev.Warning || !strings.Contains(ev.Message, "Liveness probe failed")) {
			t.Errorf("Unhealthy event %+v", ev)
		}
	}
	st := WaitStatus(t, rt, spec.ID, "restarted", func(st runtime.GroupStatus) bool {
		return st.Containers[0].RestartCount >= 1
	})
	if p := st.Containers[0].Previous; p == nil || p.State != runtime.StateTerminated {
		t.Errorf("previous state after the liveness kill = %+v", p)
	}
}

func testReadiness(t *testing.T, e Env) {
	rt := e.Runtime
	events, cancel := rt.Subscribe()
	defer cancel()
	spec := e.Spec(GroupID("ready"), runtime.RestartNever)
	spec.Containers[0].Readiness = &runtime.Probe{Exec: []string{"false"}, PeriodSeconds: 1}
	spec.Containers = append(spec.Containers, runtime.ContainerSpec{
		Name: "ok", Image: e.Image, Env: []runtime.EnvVar{{Name: "PORT", Value: "8081"}},
		Readiness: &runtime.Probe{Exec: []string{"true"}, PeriodSeconds: 1},
	}, runtime.ContainerSpec{
		Name: "noprobe", Image: e.Image, Env: []runtime.EnvVar{{Name: "PORT", Value: "8082"}},
	})
	Create(t, rt, spec)
	Collect(t, events, spec.ID, func(evs []runtime.Event) bool {
		for _, ev := range evs {
			if ev.Kind == runtime.EventUnhealthy && ev.Container == "main" && strings.Contains(ev.Message, "Readiness probe failed") {
				return true
			}
		}
		return false
	})
	st := WaitStatus(t, rt, spec.ID, "ok and noprobe ready", func(st runtime.GroupStatus) bool {
		return Running(st) && st.Containers[1].Ready && st.Containers[2].Ready
	})
	if st.Containers[0].Ready {
		t.Errorf("a container whose readiness probe fails is ready: %+v", st.Containers[0])
	}
	if st.Containers[0].RestartCount != 0 {
		t.Errorf("a failing readiness probe restarted the container: %+v", st.Containers[0])
	}
}

func sortLines(s string) string {
	lines := strings.SplitAfter(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "")
}

func count(evs []runtime.Event, k runtime.EventKind) int {
	n := 0
	for _, ev := range evs {
		if ev.Kind == k {
			n++
		}
	}
	return n
}

func kinds(evs []runtime.Event) []string {
	var ks []string
	for _, ev := range evs {
		ks = append(ks, string(ev.Kind))
	}
	return ks
}
