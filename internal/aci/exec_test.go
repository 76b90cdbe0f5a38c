package aci

import (
	"bufio"
	"context"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
)

func (e *env) running(t *testing.T, g *Group) {
	t.Helper()
	if _, _, _, err := e.svc.CreateOrUpdate(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, g.Name, "Running")
}

func code(err error) string {
	if err == nil {
		return ""
	}
	return apierr.As(err).Code
}

func TestExecSession(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.running(t, group("web", "Always"))

	tk, err := e.svc.Exec(ctx, "sub", "rg", "web", "c", `sh -c "echo hello; exit 3"`, 30, 100)
	if err != nil {
		t.Fatal(err)
	}
	if tk.ID == "" || len(tk.Password) < 32 || tk.Kind != SessionExec || tk.Rows != 30 || tk.Cols != 100 {
		t.Fatalf("ticket %+v", tk)
	}
	s, err := e.svc.OpenSession(ctx, tk.ID, tk.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, _ := io.ReadAll(s.Output)
	exit, ok, err := s.Wait(ctx)
	if string(out) != "hello\r\n" || exit != 3 || !ok || err != nil {
		t.Errorf("exec: output %q, exit %d %v %v; want hello in a terminal, exit 3", out, exit, ok, err)
	}
	// One shot: the same password again is refused.
	if _, err := e.svc.OpenSession(ctx, tk.ID, tk.Password); code(err) != "InvalidSessionPassword" || !apierr.Is(err, apierr.Unauthenticated) {
		t.Errorf("reused password: %v", err)
	}

	// A wrong password is refused and burns the ticket.
	tk, _ = e.svc.Exec(ctx, "sub", "rg", "web", "c", "cat", 0, 0)
	if tk.Rows != 24 || tk.Cols != 80 {
		t.Errorf("default terminal %dx%d, want 24x80", tk.Rows, tk.Cols)
	}
	if _, err := e.svc.OpenSession(ctx, tk.ID, "not-"+tk.Password); code(err) != "InvalidSessionPassword" {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := e.svc.OpenSession(ctx, tk.ID, tk.Password); code(err) != "InvalidSessionPassword" {
		t.Errorf("right password after a wrong one: %v", err)
	}

	// Input reaches the process (cat in a terminal echoes it back).
	tk, _ = e.svc.Exec(ctx, "sub", "rg", "web", "c", "cat", 0, 0)
	s2, err := e.svc.OpenSession(ctx, tk.ID, tk.Password)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(s2.Input, "typed\n")
	line, _ := bufio.NewReader(s2.Output).ReadString('\n')
	if line != "typed\r\n" {
		t.Errorf("cat echoed %q", line)
	}
	s2.Close()
}

func TestExecExpires(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.running(t, group("web", "Always"))
	clk := clock.NewFake(time.Now())
	e.svc.Clock = clk
	tk, err := e.svc.Exec(ctx, "sub", "rg", "web", "c", "true", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(SessionTTL + time.Second)
	if _, err := e.svc.OpenSession(ctx, tk.ID, tk.Password); code(err) != "InvalidSessionPassword" {
		t.Errorf("expired password: %v", err)
	}
}

func TestExecErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.running(t, group("web", "Always"))
	job := group("job", "Never", "echo", "done")
	job.IPAddress = nil
	if _, _, _, err := e.svc.CreateOrUpdate(ctx, job); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, "job", "Succeeded")

	for _, tc := range []struct {
		rg, group, container, cmd string
		want                      string
		class                     apierr.Class
	}{
		{"rg", "nope", "c", "ls", "ResourceNotFound", apierr.NotFound},
		{"nope", "web", "c", "ls", "ResourceGroupNotFound", apierr.NotFound},
		{"rg", "web", "nope", "ls", "ContainerNotFound", apierr.NotFound},
		{"rg", "job", "c", "ls", "ContainerNotRunning", apierr.Conflict},
		{"rg", "web", "c", "", "InvalidExecCommand", apierr.Invalid},
		{"rg", "web", "c", `echo "unterminated`, "InvalidExecCommand", apierr.Invalid},
	} {
		_, err := e.svc.Exec(ctx, "sub", tc.rg, tc.group, tc.container, tc.cmd, 0, 0)
		if code(err) != tc.want || !apierr.Is(err, tc.class) {
			t.Errorf("exec %s/%s/%s %q: %v, want %s", tc.rg, tc.group, tc.container, tc.cmd, err, tc.want)
		}
		if tc.cmd != "" && !strings.Contains(tc.cmd, `"`) {
			if _, err := e.svc.Attach(ctx, "sub", tc.rg, tc.group, tc.container); code(err) != tc.want {
				t.Errorf("attach %s/%s/%s: %v, want %s", tc.rg, tc.group, tc.container, err, tc.want)
			}
		}
	}
	if _, err := e.svc.Exec(ctx, "sub", "rg", "web", "c", "ls", -1, 5); code(err) != "InvalidTerminalSize" {
		t.Errorf("negative rows: %v", err)
	}
	// A command that cannot start is reported when the session opens.
	tk, err := e.svc.Exec(ctx, "sub", "rg", "web", "c", "no-such-program", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.OpenSession(ctx, tk.ID, tk.Password)
	if code(err) != "ExecFailed" || !strings.Contains(apierr.As(err).Message, "executable file not found") {
		t.Errorf("unknown program: %v", err)
	}
}

func TestAttachStreamsOutput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.running(t, group("web", "Always"))
	tk, err := e.svc.Attach(ctx, "sub", "rg", "web", "c")
	if err != nil || tk.Kind != SessionAttach {
		t.Fatalf("attach: %+v, %v", tk, err)
	}
	s, err := e.svc.OpenSession(ctx, tk.ID, tk.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Input != nil {
		t.Error("attach has an input")
	}
	br := bufio.NewReader(s.Output)
	if line, _ := br.ReadString('\n'); line != "listening on :8080\n" {
		t.Errorf("attach began with %q", line)
	}
	// New output of the container arrives.
	x, _ := e.svc.Exec(ctx, "sub", "rg", "web", "c", "sh -c 'echo more > /proc/1/fd/1'", 0, 0)
	xs, err := e.svc.OpenSession(ctx, x.ID, x.Password)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(xs.Output)
	xs.Close()
	if line, _ := br.ReadString('\n'); line != "more\n" {
		t.Errorf("attach then showed %q", line)
	}
	// Deleting the group ends it.
	if _, err := e.svc.Delete(ctx, "sub", "rg", "web"); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after delete: %q, %v", rest, err)
	}
	if _, ok, _ := s.Wait(ctx); ok {
		t.Error("attach has an exit code")
	}
}

func TestLogsTimestamps(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	g := group("job", "Never", "echo", "stamped")
	g.IPAddress = nil
	if _, _, _, err := e.svc.CreateOrUpdate(ctx, g); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, "job", "Succeeded")
	logs, err := e.svc.Logs(ctx, "sub", "rg", "job", "c", LogOptions{Timestamps: true})
	ts, line, _ := strings.Cut(logs, " ")
	if _, perr := time.Parse(time.RFC3339Nano, ts); err != nil || perr != nil || line != "stamped\n" {
		t.Errorf("logs with timestamps %q: %v %v", logs, err, perr)
	}
}

func TestProbes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	one := 1
	g := group("probed", "Always")
	g.Containers[0].LivenessProbe = &Probe{Exec: []string{"false"}, PeriodSeconds: &one, FailureThreshold: &one}
	g.Containers[0].ReadinessProbe = &Probe{HTTPGet: &HTTPGet{Port: 9999, Path: "/ready", Scheme: "HTTP",
		Headers: []HTTPHeader{{Name: "X-A", Value: "b"}}}, PeriodSeconds: &one}
	spec := e.svc.runtimeSpec(g, "")
	rp := spec.Containers[0].Readiness
	if rp.HTTPGet == nil || rp.HTTPGet.Scheme != "http" || rp.HTTPGet.Port != 9999 || rp.HTTPGet.Headers["X-A"] != "b" || rp.PeriodSeconds != 1 || rp.FailureThreshold != 0 {
		t.Errorf("readiness probe mapped to %+v %+v", rp, rp.HTTPGet)
	}
	if lp := spec.Containers[0].Liveness; !reflect.DeepEqual(lp.Exec, []string{"false"}) || lp.FailureThreshold != 1 {
		t.Errorf("liveness probe mapped to %+v", lp)
	}

	e.running(t, g)
	// A failing liveness probe: Unhealthy, Killing, restarted.
	deadline := time.Now().Add(time.Minute)
	for {
		v, err := e.svc.View(ctx, "sub", "rg", "probed")
		if err != nil {
			t.Fatal(err)
		}
		c := v.Containers["c"]
		names := map[string]string{}
		for _, ev := range c.Events {
			names[ev.Name] = ev.Type
		}
		if c.RestartCount >= 1 && names["Unhealthy"] == "Warning" && names["Killing"] == "Normal" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no liveness restart: restarts %d, events %+v", c.RestartCount, c.Events)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string][]string{
		"/bin/sh":                  {"/bin/sh"},
		"  ls   -la /tmp ":         {"ls", "-la", "/tmp"},
		`sh -c "echo a b; exit 3"`: {"sh", "-c", "echo a b; exit 3"},
		`echo 'it''s' "a \"q\""`:   {"echo", "its", `a "q"`},
		`echo a\ b`:                {"echo", "a b"},
		`echo ""`:                  {"echo", ""},
		"":                         nil,
	} {
		got, err := splitCommand(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("splitCommand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestExecIntoInitContainer: init containers have run to completion when
// the group runs, so exec and attach into one are refused as not running,
// saying it is an init container; the group's containers stay reachable.
func TestExecIntoInitContainer(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	g := group("web", "Always")
	g.InitContainers = []Container{{Name: "setup", Image: "reg/app:v1", Command: []string{"/app", "exit", "0"}}}
	e.running(t, g)
	_, err := e.svc.Exec(ctx, "sub", "rg", "web", "setup", "ls", 0, 0)
	if code(err) != "ContainerNotRunning" || !apierr.Is(err, apierr.Conflict) || !strings.Contains(apierr.As(err).Message, "init container") {
		t.Errorf("exec into an init container: %v", err)
	}
	if _, err := e.svc.Attach(ctx, "sub", "rg", "web", "setup"); code(err) != "ContainerNotRunning" {
		t.Errorf("attach to an init container: %v", err)
	}
	if _, err := e.svc.Exec(ctx, "sub", "rg", "web", "c", "ls", 0, 0); err != nil {
		t.Errorf("exec into the group's container: %v", err)
	}
}

// TestPendingSessionCaps: tickets asked for and not opened are capped per
// group and in all; opening one or letting it expire frees its place.
func TestPendingSessionCaps(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.running(t, group("web", "Always"))
	e.running(t, group("other", "Always"))
	clk := clock.NewFake(time.Now())
	e.svc.Clock = clk

	var first Ticket
	for i := range MaxPendingSessionsPerGroup {
		tk, err := e.svc.Exec(ctx, "sub", "rg", "web", "c", "true", 0, 0)
		if err != nil {
			t.Fatalf("ticket %d: %v", i, err)
		}
		if i == 0 {
			first = tk
		}
	}
	_, err := e.svc.Exec(ctx, "sub", "rg", "web", "c", "true", 0, 0)
	if code(err) != "TooManyRequests" || !apierr.Is(err, apierr.TooManyRequests) || !strings.Contains(apierr.As(err).Message, "'web'") {
		t.Fatalf("ticket over the group's cap: %v", err)
	}
	if _, err := e.svc.Attach(ctx, "sub", "rg", "web", "c"); code(err) != "TooManyRequests" {
		t.Errorf("attach over the group's cap: %v", err)
	}
	// Another group has its own allowance.
	if _, err := e.svc.Exec(ctx, "sub", "rg", "other", "c", "true", 0, 0); err != nil {
		t.Errorf("another group: %v", err)
	}
	// Opening a ticket frees its place.
	s, err := e.svc.OpenSession(ctx, first.ID, first.Password)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, s.Output)
	s.Wait(ctx)
	s.Close()
	if _, err := e.svc.Exec(ctx, "sub", "rg", "web", "c", "true", 0, 0); err != nil {
		t.Errorf("after opening one: %v", err)
	}
	// Expired tickets do not count.
	clk.Advance(SessionTTL + time.Second)
	for i := range MaxPendingSessionsPerGroup {
		if _, err := e.svc.Exec(ctx, "sub", "rg", "web", "c", "true", 0, 0); err != nil {
			t.Fatalf("after expiry, ticket %d: %v", i, err)
		}
	}
}

// TestPendingSessionTotalCap: the cap across groups.
func TestPendingSessionTotalCap(t *testing.T) {
	var tab sessionTable
	now := time.Now()
	for i := range MaxPendingSessions {
		p := &pendingSession{group: "g" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), expires: now.Add(SessionTTL)}
		if _, _, err := tab.add(p, "g", now); err != nil {
			t.Fatalf("ticket %d: %v", i, err)
		}
	}
	_, _, err := tab.add(&pendingSession{group: "fresh", expires: now.Add(SessionTTL)}, "fresh", now)
	if code(err) != "TooManyRequests" || strings.Contains(apierr.As(err).Message, "'fresh'") {
		t.Fatalf("ticket over the total cap: %v", err)
	}
	later := now.Add(SessionTTL + time.Second)
	if _, _, err := tab.add(&pendingSession{group: "fresh", expires: later.Add(SessionTTL)}, "fresh", later); err != nil {
		t.Fatalf("after the others expired: %v", err)
	}
	if len(tab.m) != 1 {
		t.Errorf("%d tickets kept, want only the live one", len(tab.m))
	}
}
