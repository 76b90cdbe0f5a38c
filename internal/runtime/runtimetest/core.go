package runtimetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/runtime"
)

// coreTests cover init containers, RestartGroup, volumes, security contexts
// and GPUs (see init.go, restart.go, volumes.go, security.go).
var coreTests = []struct {
	name string
	fn   func(*testing.T, Env)
}{
	{"InitContainers", testInitContainers},
	{"InitContainerFails", testInitContainerFails},
	{"RestartGroup", testRestartGroup},
	{"RestartUnknownGroup", testRestartUnknownGroup},
	{"EmptyDirShared", testEmptyDirShared},
	{"SecretVolume", testSecretVolume},
	{"SharePersists", testSharePersists},
	{"ReadOnlyMount", testReadOnlyMount},
	{"MountValidation", testMountValidation},
	{"RunAsUser", testRunAsUser},
	{"GPUWarning", testGPUWarning},
}

// App is a container of the test image running args.
func (e Env) App(name string, args ...string) runtime.ContainerSpec {
	return runtime.ContainerSpec{Name: name, Image: e.Image, Command: append([]string{"/app"}, args...)}
}

// Logs returns a container's whole log, failing the test on error.
func Logs(t *testing.T, rt runtime.Runtime, id, container string) string {
	t.Helper()
	b, err := runtime.ReadLogs(context.Background(), rt, id, container, runtime.LogOptions{})
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", id, container, err)
	}
	return string(b)
}

// AllTerminated reports whether every container is terminated.
func AllTerminated(st runtime.GroupStatus) bool {
	for _, c := range st.Containers {
		if c.Current.State != runtime.StateTerminated {
			return false
		}
	}
	return len(st.Containers) > 0
}

// Drain returns the events of group id already in the channel (all of a
// call's events are there once it returned).
func Drain(events <-chan runtime.Event, id string) []runtime.Event {
	var got []runtime.Event
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return got
			}
			if ev.GroupID == id {
				got = append(got, ev)
			}
		default:
			return got
		}
	}
}

// describe lists events as "container:Kind" words.
func describe(evs []runtime.Event) string {
	var s []string
	for _, ev := range evs {
		s = append(s, ev.Container+":"+string(ev.Kind))
	}
	return strings.Join(s, " ")
}

// exitCode returns container name's exit code from st, failing if it is not
// terminated.
func exitCode(t *testing.T, st runtime.GroupStatus, name string) int {
	t.Helper()
	for _, c := range st.Containers {
		if c.Name == name {
			if c.Current.State != runtime.StateTerminated {
				t.Fatalf("container %s is %s, want Terminated", name, c.Current.State)
			}
			return c.Current.ExitCode
		}
	}
	t.Fatalf("no container %s in %+v", name, st.Containers)
	return 0
}

func wantLogs(t *testing.T, rt runtime.Runtime, id, container, want string) {
	t.Helper()
	if got := Logs(t, rt, id, container); got != want {
		t.Errorf("logs of %s = %q, want %q", container, got, want)
	}
}

func wantErrIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: err = %v, want %v", what, err, target)
	}
}

func ptr[T any](v T) *T { return &v }
