package aci

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/fake"
	"github.com/berth-dev/berth/internal/store"
	"github.com/berth-dev/berth/internal/store/memory"
)

type env struct {
	st  store.Store
	rt  *fake.Runtime
	res *resources.Service
	ops *operation.Tracker
	svc *Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{st: memory.New(), rt: fake.New(fake.Options{})}
	e.start(t)
	ctx := context.Background()
	if err := e.res.EnsureSubscription(ctx, resources.Subscription{ID: "sub", TenantID: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.res.CreateOrUpdate(ctx, resources.ResourceGroup{Subscription: "sub", Name: "rg", Location: "westus"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// start builds a Service over the env's store and runtime, as a berth
// (re)start does.
func (e *env) start(t *testing.T) {
	clk := clock.Real{}
	e.ops = &operation.Tracker{Store: e.st, Clock: clk}
	e.res = &resources.Service{Store: e.st, Clock: clk, Operations: e.ops}
	e.svc = &Service{Store: e.st, Runtime: e.rt, Resources: e.res, Operations: e.ops, Clock: clk}
	if err := e.svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.res.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.res.Close(); e.svc.Close() })
}

func group(name, policy string, cmd ...string) *Group {
	return &Group{Subscription: "sub", ResourceGroup: "rg", Name: name, Location: "westus", OSType: "Linux", RestartPolicy: policy,
		Containers: []Container{{Name: "c", Image: "reg/app:v1", Command: cmd, Requests: Resources{CPU: 1, MemoryGB: 1},
			Ports: []Port{{Port: 80}}}},
		IPAddress: &IPAddress{Type: "Public", Ports: []Port{{Port: 80, Protocol: "TCP"}}}}
}

// waitOp waits for an operation to finish and returns it.
func (e *env) waitOp(t *testing.T, id string) *operation.Operation {
	t.Helper()
	for i := 0; i < 500; i++ {
		op, err := e.ops.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if op.Done() {
			return op
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("operation did not finish")
	return nil
}

func (e *env) waitState(t *testing.T, name, want string) *View {
	t.Helper()
	var v *View
	for i := 0; i < 500; i++ {
		var err error
		if v, err = e.svc.View(context.Background(), "sub", "rg", name); err != nil {
			t.Fatal(err)
		}
		if v.State == want {
			return v
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("group %s state %s, want %s", name, v.State, want)
	return nil
}

func TestCreateRunDelete(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	g, created, op, err := e.svc.CreateOrUpdate(ctx, group("web", "Always"))
	if err != nil || !created || g.ProvisioningState != Pending {
		t.Fatalf("create: %v %v %+v", err, created, g)
	}
	if got := e.waitOp(t, op.ID); got.Status != operation.Succeeded {
		t.Fatalf("op %+v", got)
	}
	v := e.waitState(t, "web", "Running")
	if v.ProvisioningState != Succeeded || v.IP == "" || v.Containers["c"].CurrentState.State != "Running" {
		t.Fatalf("view %+v", v)
	}
	var names []string
	for _, ev := range v.Containers["c"].Events {
		names = append(names, ev.Name)
	}
	if strings.Join(names, ",") != "Pulling,Pulled,Started" {
		t.Fatalf("events %v", names)
	}
	list, err := e.svc.List(ctx, "sub", "")
	if err != nil || len(list) != 1 {
		t.Fatalf("list %v %v", list, err)
	}
	if _, err := e.svc.Delete(ctx, "sub", "rg", "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.View(ctx, "sub", "rg", "web"); apierr.As(err).Code != "ResourceNotFound" {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := e.rt.Status(ctx, g.RuntimeID); err == nil {
		t.Fatal("runtime group survived delete")
	}
}

func TestNeverPolicyExitsAndLogs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	g := group("job", "Never", "echo", "FOO", "BAR")
	g.IPAddress = nil
	if _, _, _, err := e.svc.CreateOrUpdate(ctx, g); err != nil {
		t.Fatal(err)
	}
	v := e.waitState(t, "job", "Succeeded")
	cs := v.Containers["c"].CurrentState
	if cs.State != "Terminated" || cs.ExitCode == nil || *cs.ExitCode != 0 {
		t.Fatalf("state %+v", cs)
	}
	logs, err := e.svc.Logs(ctx, "sub", "rg", "job", "c", LogOptions{Tail: 1})
	if err != nil || !strings.Contains(logs, "FOO BAR") {
		t.Fatalf("logs %q %v", logs, err)
	}
	if _, err := e.svc.Logs(ctx, "sub", "rg", "job", "nope", LogOptions{}); apierr.As(err).Code != "ContainerNotFound" {
		t.Fatalf("logs of unknown container: %v", err)
	}
	g2 := group("fail", "Never", "exit", "3")
	g2.IPAddress = nil
	if _, _, _, err := e.svc.CreateOrUpdate(ctx, g2); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, "fail", "Failed")
}

func TestPullFailure(t *testing.T) {
	e := newEnv(t)
	g := group("bad", "Always")
	g.Containers[0].Image = "reg/notfound:v1"
	_, _, op, err := e.svc.CreateOrUpdate(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	got := e.waitOp(t, op.ID)
	if got.Status != operation.Failed || got.ErrorCode != "InaccessibleImage" || !strings.Contains(got.ErrorMsg, "reg/notfound:v1") {
		t.Fatalf("op %+v", got)
	}
	v, err := e.svc.View(context.Background(), "sub", "rg", "bad")
	if err != nil {
		t.Fatal(err)
	}
	if v.ProvisioningState != Failed || v.State != "Pending" {
		t.Fatalf("view %+v", v)
	}
	var warned bool
	for _, ev := range v.Containers["c"].Events {
		warned = warned || (ev.Name == "Failed" && ev.Type == "Warning")
	}
	if !warned {
		t.Fatalf("no Failed event: %+v", v.Containers["c"].Events)
	}
}

func TestValidationStoresNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for name, mutate := range map[string]func(*Group){
		"bad name":     func(g *Group) { g.Name = "Bad" },
		"windows":      func(g *Group) { g.OSType = "Windows" },
		"no cpu":       func(g *Group) { g.Containers[0].Requests.CPU = 0 },
		"dup":          func(g *Group) { g.Containers = append(g.Containers, g.Containers[0]) },
		"port unknown": func(g *Group) { g.IPAddress.Ports[0].Port = 81 },
		"too big":      func(g *Group) { g.Containers[0].Requests.CPU = 5 },
		"creds":        func(g *Group) { g.RegistryCredentials = make([]RegistryCredential, 2) },
		"env":          func(g *Group) { g.Containers[0].Env = []EnvVar{{Name: "bad name"}} },
	} {
		g := group("x", "Always")
		mutate(g)
		if _, _, _, err := e.svc.CreateOrUpdate(ctx, g); !apierr.Is(err, apierr.Invalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	g := group("x", "Always")
	g.ResourceGroup = "nope"
	if _, _, _, err := e.svc.CreateOrUpdate(ctx, g); apierr.As(err).Code != "ResourceGroupNotFound" {
		t.Errorf("unknown rg: %v", err)
	}
	if list, _ := e.svc.List(ctx, "sub", ""); len(list) != 0 {
		t.Fatalf("stored %d groups", len(list))
	}
}

func TestRestartReadopts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	g, _, op, err := e.svc.CreateOrUpdate(ctx, group("web", "Always"))
	if err != nil {
		t.Fatal(err)
	}
	e.waitOp(t, op.ID)
	e.svc.Close()
	e.start(t) // a new berth process over the same store and runtime
	v := e.waitState(t, "web", "Running")
	if v.RuntimeID != g.RuntimeID {
		t.Fatalf("runtime id changed")
	}
}

func TestUpdateReplacesAndResourceGroupDeleteCascades(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	g1, _, op, _ := e.svc.CreateOrUpdate(ctx, group("web", "Always"))
	e.waitOp(t, op.ID)
	g2, created, op2, err := e.svc.CreateOrUpdate(ctx, group("web", "Always"))
	if err != nil || created {
		t.Fatalf("update: %v created=%v", err, created)
	}
	e.waitOp(t, op2.ID)
	if _, err := e.rt.Status(ctx, g1.RuntimeID); err == nil {
		t.Fatal("old runtime group kept after update")
	}
	rgOp, err := e.res.BeginDelete(ctx, "sub", "rg")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.waitOp(t, rgOp.ID); got.Status != operation.Succeeded {
		t.Fatalf("resource group delete: %+v", got)
	}
	if _, err := e.rt.Status(ctx, g2.RuntimeID); err == nil {
		t.Fatal("runtime group kept after resource group delete")
	}
	if list, _ := e.svc.List(ctx, "sub", ""); len(list) != 0 {
		t.Fatalf("groups left: %d", len(list))
	}
}

func TestConcurrentChangesAreSerialised(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	slow := group("web", "Always")
	slow.Containers[0].Image = "reg/slow:v1"
	_, _, op, err := e.svc.CreateOrUpdate(ctx, slow)
	if err != nil {
		t.Fatal(err)
	}
	// A second PUT while the first provisions is refused.
	if _, _, _, err := e.svc.CreateOrUpdate(ctx, group("web", "Always")); apierr.As(err).Code != "ContainerGroupTransitioning" {
		t.Fatalf("second PUT: %v", err)
	}
	// A DELETE cancels the create and removes everything.
	if _, err := e.svc.Delete(ctx, "sub", "rg", "web"); err != nil {
		t.Fatal(err)
	}
	if got := e.waitOp(t, op.ID); got.Status != operation.Failed || got.ErrorCode != "Canceled" {
		t.Fatalf("create op after delete: %+v", got)
	}
	if ids, _ := e.rt.ListGroups(ctx); len(ids) != 0 {
		t.Fatalf("runtime groups left: %v", ids)
	}
	if _, err := e.svc.Get(ctx, "sub", "rg", "web"); !apierr.Is(err, apierr.NotFound) {
		t.Fatalf("group after delete: %v", err)
	}
}

func TestShutdownMidCreateResumes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	slow := group("web", "Always")
	slow.Containers[0].Image = "reg/slow:v1"
	_, _, op, err := e.svc.CreateOrUpdate(ctx, slow)
	if err != nil {
		t.Fatal(err)
	}
	e.res.Close()
	e.svc.Close()
	if got, _ := e.ops.Get(ctx, op.ID); got.Done() {
		t.Fatalf("shutdown settled the operation: %+v", got)
	}
	if _, _, _, err := e.svc.CreateOrUpdate(ctx, group("other", "Always")); apierr.As(err).Code != "ServiceUnavailable" {
		t.Fatalf("create after Close: %v", err)
	}
	e.rt.ReleaseSlowPulls()
	e.start(t)
	if got := e.waitOp(t, op.ID); got.Status != operation.Succeeded {
		t.Fatalf("resumed op: %+v", got)
	}
	e.waitState(t, "web", "Running")
}

func TestStartSweepsOrphansAndSettlesOperations(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// A runtime group nobody owns (as after a crash mid-create).
	orphan := group("x", "Always")
	orphan.RuntimeID = "orphan"
	if _, err := e.rt.CreateGroup(ctx, e.svc.runtimeSpec(orphan, "")); err != nil {
		t.Fatal(err)
	}
	// An operation whose group vanished.
	stale, err := e.ops.Start(ctx, "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/gone", opKindWrite)
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Close()
	e.start(t)
	if ids, _ := e.rt.ListGroups(ctx); len(ids) != 0 {
		t.Fatalf("orphan kept: %v", ids)
	}
	if got, _ := e.ops.Get(ctx, stale.ID); got.Status != operation.Failed || got.ErrorCode != "OperationInterrupted" {
		t.Fatalf("stale op: %+v", got)
	}
}

func TestUpdateRules(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, _, op, err := e.svc.CreateOrUpdate(ctx, group("web", "Always"))
	if err != nil {
		t.Fatal(err)
	}
	e.waitOp(t, op.ID)
	for name, mutate := range map[string]func(*Group){
		"location": func(g *Group) { g.Location = "eastus" },
		"policy":   func(g *Group) { g.RestartPolicy = "Never" },
		"cpu":      func(g *Group) { g.Containers[0].Requests.CPU = 2 },
	} {
		g := group("web", "Always")
		mutate(g)
		if _, _, _, err := e.svc.CreateOrUpdate(ctx, g); !apierr.Is(err, apierr.Invalid) {
			t.Errorf("%s change: %v", name, err)
		}
	}
	// Location compares like ARM: case and spaces do not matter.
	g := group("web", "Always")
	g.Location = "West US"
	if _, _, op, err := e.svc.CreateOrUpdate(ctx, g); err != nil {
		t.Fatalf("same location spelled differently: %v", err)
	} else {
		e.waitOp(t, op.ID)
	}
}

func TestEventsFold(t *testing.T) {
	e := newEnv(t)
	g := &Group{RuntimeID: "r1"}
	_ = e.st.Update(context.Background(), func(tx store.Tx) error { return tx.Put(tableRuntime, "r1", []byte("k")) })
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, k := range []runtime.EventKind{runtime.EventStarted, runtime.EventBackOff, runtime.EventStarted, runtime.EventBackOff, runtime.EventStarted} {
		e.svc.record(runtime.Event{GroupID: "r1", Container: "c", Kind: k, Message: string(k), Time: at.Add(time.Duration(i) * time.Second)})
	}
	e.svc.record(runtime.Event{GroupID: "unowned", Container: "c", Kind: runtime.EventStarted, Time: at})
	evs, err := e.svc.events(context.Background(), g.RuntimeID)
	if err != nil {
		t.Fatal(err)
	}
	list := evs["c"]
	if len(list) != 2 || list[0].Name != "BackOff" || list[0].Count != 2 || list[1].Name != "Started" || list[1].Count != 3 ||
		!list[1].FirstTimestamp.Equal(at) || !list[1].LastTimestamp.Equal(at.Add(4*time.Second)) {
		t.Fatalf("folded events %+v", list)
	}
	if other, _ := e.svc.events(context.Background(), "unowned"); len(other) != 0 {
		t.Fatalf("recorded events of an unowned runtime group: %v", other)
	}
}
