package fake_test

import (
	"context"
	"errors"
	"testing"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/fake"
	"github.com/berth-dev/berth/internal/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	rt := fake.New(fake.Options{})
	t.Cleanup(func() { rt.Close() })
	runtimetest.Suite(t, runtimetest.Env{
		Runtime:      rt,
		Image:        "registry.test/app:v1",
		MissingImage: "registry.test/notfound:v1",
	})
}

func TestExit(t *testing.T) {
	rt := fake.New(fake.Options{})
	defer rt.Close()
	env := runtimetest.Env{Runtime: rt, Image: "registry.test/app:v1"}
	spec := env.Spec(runtimetest.GroupID("exit"), runtime.RestartOnFailure)
	runtimetest.Create(t, rt, spec)

	if err := rt.Exit(spec.ID, "main", 0); err != nil {
		t.Fatal(err)
	}
	st, _ := rt.Status(context.Background(), spec.ID)
	if c := st.Containers[0]; c.Current.State != runtime.StateTerminated || c.Current.DetailStatus != "Completed" {
		t.Fatalf("after Exit(0) with OnFailure: %+v", c)
	}
	if err := rt.Exit(spec.ID, "main", 1); err == nil {
		t.Error("Exit of a terminated container succeeded")
	}
	if err := rt.Exit(spec.ID, "nope", 1); err == nil {
		t.Error("Exit of an unknown container succeeded")
	}
}

func TestGitRepoVolume(t *testing.T) {
	rt := fake.New(fake.Options{GitRepos: map[string]map[string][]byte{
		"file:///repos/app.git": {"README": []byte("hello")},
	}})
	defer rt.Close()
	env := runtimetest.Env{Runtime: rt, Image: "registry.test/app:v1"}
	spec := env.Spec(runtimetest.GroupID("git"), runtime.RestartNever, "read", "/src/app/README")
	spec.Volumes = []runtime.VolumeSpec{{Name: "code", Kind: runtime.VolumeGitRepo,
		GitRepo: &runtime.GitRepoSpec{Repository: "file:///repos/app.git", Directory: "app"}}}
	spec.Containers[0].Mounts = []runtime.Mount{{Volume: "code", Path: "/src"}}
	runtimetest.Create(t, rt, spec)
	runtimetest.WaitStatus(t, rt, spec.ID, "done", runtimetest.Terminated)
	if got := runtimetest.Logs(t, rt, spec.ID, "main"); got != "hello" {
		t.Errorf("logs = %q", got)
	}
	files, err := rt.VolumeFiles(spec.ID, "code")
	if err != nil || string(files["app/README"]) != "hello" {
		t.Errorf("VolumeFiles = %v, %v", files, err)
	}

	events, cancel := rt.Subscribe()
	defer cancel()
	bad := env.Spec(runtimetest.GroupID("badgit"), runtime.RestartNever)
	bad.Volumes = []runtime.VolumeSpec{{Name: "code", Kind: runtime.VolumeGitRepo, GitRepo: &runtime.GitRepoSpec{Repository: "file:///nope"}}}
	bad.Containers[0].Mounts = spec.Containers[0].Mounts
	if _, err := rt.CreateGroup(context.Background(), bad); !errors.Is(err, runtime.ErrVolume) {
		t.Fatalf("err = %v, want ErrVolume", err)
	}
	evs := runtimetest.Drain(events, bad.ID)
	if len(evs) == 0 || evs[len(evs)-1].Kind != runtime.EventFailedMount || evs[len(evs)-1].Container != "main" {
		t.Errorf("events = %+v, want FailedMount last", evs)
	}
	if _, err := rt.Status(context.Background(), bad.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Status after failed create: %v", err)
	}
}

func TestOOMAndGPURefuse(t *testing.T) {
	rt := fake.New(fake.Options{GPU: "refuse", GPUs: 1})
	defer rt.Close()
	env := runtimetest.Env{Runtime: rt, Image: "registry.test/app:v1"}
	spec := env.Spec(runtimetest.GroupID("oom"), runtime.RestartNever, "alloc", "100")
	spec.Containers[0].MemoryBytes = 64 << 20
	spec.Containers[0].GPUs = 1
	runtimetest.Create(t, rt, spec)
	st := runtimetest.WaitStatus(t, rt, spec.ID, "killed", runtimetest.Terminated)
	if c := st.Containers[0].Current; c.ExitCode != 137 || c.DetailStatus != "OOMKilled" {
		t.Errorf("status = %+v", c)
	}
	two := env.Spec(runtimetest.GroupID("gpus"), runtime.RestartNever)
	two.Containers[0].GPUs = 2
	if _, err := rt.CreateGroup(context.Background(), two); !errors.Is(err, runtime.ErrUnsupported) {
		t.Errorf("two GPUs on a one-GPU host in refuse mode: err = %v", err)
	}
}
