package containerd

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/containerd/logdriver"
	"github.com/berth-dev/berth/internal/runtime/runtimetest"
)

// TestLogRotation: a container that writes 6 MB keeps its last ~4 MiB, in
// two files, read back in order.
func TestLogRotation(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	rt := newTestRuntime(t, testConfig(t))
	t.Cleanup(func() { cleanupRuntime(t, rt) })
	ctx := context.Background()

	spec := serveSpec(runtimetest.GroupID("rotate"), image, host, runtime.RestartNever)
	spec.Containers[0].Command = []string{"/app", "lines", "6000", "1000"}
	runtimetest.Create(t, rt, spec)
	st := runtimetest.WaitStatus(t, rt, spec.ID, "done", runtimetest.Terminated)
	if st.Containers[0].Current.ExitCode != 0 {
		t.Fatalf("status %+v", st.Containers[0])
	}
	file := rt.driverLogPath(spec.ID, containerID(spec.ID, "web"))
	var total int64
	for _, f := range []string{file, logdriver.Rotated(file)} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatalf("log file: %v", err)
		}
		if fi.Size() > logdriver.MaxFileSize {
			t.Errorf("%s is %d bytes, over %d", f, fi.Size(), logdriver.MaxFileSize)
		}
		total += fi.Size()
	}
	if total < logdriver.MaxFileSize {
		t.Errorf("only %d bytes kept", total)
	}
	last, err := runtime.ReadLogs(ctx, rt, spec.ID, "web", runtime.LogOptions{Tail: 2})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(last), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "5998 x") || !strings.HasPrefix(lines[1], "5999 x") || len(lines[1]) != 999 {
		t.Errorf("tail 2 = %.60q…", last)
	}
	all, _ := runtime.ReadLogs(ctx, rt, spec.ID, "web", runtime.LogOptions{})
	if strings.HasPrefix(string(all), "0 x") || int64(len(all)) > 2*logdriver.MaxFileSize {
		t.Errorf("the whole log (%d bytes) was kept; first line %.20q", len(all), all)
	}
}

// TestLegacyLogs: a container whose earlier runs logged to a plain file
// (cio.LogFile, before the log driver) still shows those lines first.
func TestLegacyLogs(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	rt := newTestRuntime(t, testConfig(t))
	t.Cleanup(func() { cleanupRuntime(t, rt) })
	ctx := context.Background()

	spec := serveSpec(runtimetest.GroupID("legacy"), image, host, runtime.RestartNever)
	spec.Containers[0].Command = []string{"/app", "echo", "from the driver"}
	runtimetest.Create(t, rt, spec)
	runtimetest.WaitStatus(t, rt, spec.ID, "done", runtimetest.Terminated)
	legacy := rt.logPath(spec.ID, containerID(spec.ID, "web"))
	if err := os.WriteFile(legacy, []byte("an old run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := runtime.ReadLogs(ctx, rt, spec.ID, "web", runtime.LogOptions{})
	if err != nil || string(got) != "an old run\nfrom the driver\n" {
		t.Errorf("logs = %q, %v", got, err)
	}
	got, _ = runtime.ReadLogs(ctx, rt, spec.ID, "web", runtime.LogOptions{Tail: 1, Timestamps: true})
	if _, line, _ := strings.Cut(string(got), " "); line != "from the driver\n" {
		t.Errorf("tail 1 with timestamps = %q", got)
	}
}

// TestHTTPProbes: httpGet probes against the group's address, with a
// header; a failing liveness probe restarts the container, readiness
// follows the endpoint, and both carry on after berth restarts.
func TestHTTPProbes(t *testing.T) {
	requireRoot(t)
	host, image, _ := registryEnv(t)
	cfg := testConfig(t)
	rt := newTestRuntime(t, cfg)
	current := rt
	t.Cleanup(func() { cleanupRuntime(t, current) })
	ctx := context.Background()

	spec := serveSpec(runtimetest.GroupID("probes"), image, host, runtime.RestartOnFailure,
		runtime.EnvVar{Name: "HEALTH_HEADER", Value: "X-Probe: berth"}, runtime.EnvVar{Name: "HEALTHY", Value: "false"})
	get := &runtime.HTTPGetProbe{Path: "/healthz", Port: 8080, Scheme: "http", Headers: map[string]string{"X-Probe": "berth"}}
	spec.Containers[0].Readiness = &runtime.Probe{HTTPGet: get, PeriodSeconds: 1, FailureThreshold: 1}
	st, err := rt.CreateGroup(ctx, spec) // deleted by cleanupRuntime
	if err != nil {
		t.Fatal(err)
	}
	ip := st.IP

	// Unhealthy at start: running, not ready.
	events, cancel := rt.Subscribe()
	defer cancel()
	runtimetest.Collect(t, events, spec.ID, func(evs []runtime.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Kind == runtime.EventUnhealthy &&
			strings.Contains(evs[len(evs)-1].Message, "Readiness probe failed: HTTP probe failed with statuscode: 500")
	})
	if st, _ := rt.Status(ctx, spec.ID); !runtimetest.Running(st) || st.Containers[0].Ready {
		t.Fatalf("status %+v: want running, not ready", st.Containers[0])
	}
	if _, err := get200(t, "http://"+ip+":8080/health?ok=true"); err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitStatus(t, rt, spec.ID, "ready", func(st runtime.GroupStatus) bool { return st.Containers[0].Ready })

	// berth restarts; the verdict stays, the probes resume, a liveness
	// probe (spec of the recovered group) restarts the container when the
	// endpoint fails, even though the app exits 0 on SIGTERM (OnFailure).
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	rt = newTestRuntime(t, cfg)
	current = rt
	spec.Containers[0].Liveness = &runtime.Probe{HTTPGet: get, PeriodSeconds: 1, FailureThreshold: 2}
	if st, err := rt.RecoverGroup(ctx, spec); err != nil || !st.Containers[0].Ready {
		t.Fatalf("after recovery: %+v, %v", st, err)
	}
	events2, cancel2 := rt.Subscribe()
	defer cancel2()
	if _, err := get200(t, "http://"+ip+":8080/health?ok=false"); err != nil {
		t.Fatal(err)
	}
	got := runtimetest.Collect(t, events2, spec.ID, func(evs []runtime.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Kind == runtime.EventStarted
	})
	var killing bool
	for _, ev := range got {
		killing = killing || (ev.Kind == runtime.EventKilling && strings.Contains(ev.Message, "failed liveness probe"))
	}
	if !killing {
		t.Errorf("events %+v: no Killing for the liveness probe", got)
	}
	st = runtimetest.WaitStatus(t, rt, spec.ID, "restarted", func(st runtime.GroupStatus) bool {
		return st.Containers[0].RestartCount >= 1 && runtimetest.Running(st)
	})
	// HEALTHY=false again after the restart: not ready.
	if st.Containers[0].Ready {
		t.Errorf("ready right after a restart with a failing readiness probe: %+v", st.Containers[0])
	}
}

func get200(t *testing.T, url string) (string, error) {
	t.Helper()
	var out string
	var err error
	for i := 0; i < 100; i++ {
		if out, err = get(url); err == nil {
			return out, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return out, err
}
