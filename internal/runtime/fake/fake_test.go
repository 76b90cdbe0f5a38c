package fake_test

import (
	"context"
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
