package aci

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/store"
)

// faultyStore fails Update while failures > 0 (counting down), or, once
// broken is set, every Update after the next allow ones.
type faultyStore struct {
	store.Store
	failures atomic.Int32
	broken   atomic.Bool
	allow    atomic.Int32
}

var errDisk = errors.New("disk on fire")

func (s *faultyStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if s.broken.Load() && s.allow.Add(-1) < 0 || s.failures.Add(-1) >= 0 {
		return errDisk
	}
	return s.Store.Update(ctx, fn)
}

// faultyRuntime fails DeleteGroup for the ids in failDelete.
type faultyRuntime struct {
	runtime.Runtime
	mu         sync.Mutex
	failDelete map[string]bool
}

func (r *faultyRuntime) DeleteGroup(ctx context.Context, id string) error {
	r.mu.Lock()
	fail := r.failDelete[id]
	r.mu.Unlock()
	if fail {
		return errors.New("runtime: cannot delete")
	}
	return r.Runtime.DeleteGroup(ctx, id)
}

func (r *faultyRuntime) setFail(id string, fail bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failDelete == nil {
		r.failDelete = map[string]bool{}
	}
	r.failDelete[id] = fail
}

func (e *env) create(t *testing.T, g *Group) *View {
	t.Helper()
	v, _, op, err := e.svc.CreateOrUpdate(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.waitOp(t, op.ID); got.Status != operation.Succeeded {
		t.Fatalf("create %s: %+v", g.Name, got)
	}
	return v
}

func TestStopStart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first := e.create(t, group("web", "Always"))
	e.waitState(t, "web", "Running")

	if err := e.svc.StopGroup(ctx, "sub", "rg", "web"); err != nil {
		t.Fatal(err)
	}
	v := e.waitState(t, "web", "Stopped")
	if v.IP != "" || v.ProvisioningState != Succeeded || v.Containers["c"].CurrentState.State != "Terminated" {
		t.Fatalf("stopped view: %+v %+v", v.Group, v.Containers["c"])
	}
	if _, err := e.rt.Status(ctx, first.RuntimeID); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("runtime group after stop: %v", err)
	}
	if err := e.svc.StopGroup(ctx, "sub", "rg", "web"); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	logs, err := e.svc.Logs(ctx, "sub", "rg", "web", "c", LogOptions{})
	if err != nil || logs != "" {
		t.Fatalf("logs of a stopped group: %q %v", logs, err)
	}

	op, err := e.svc.StartGroup(ctx, "sub", "rg", "web")
	if err != nil || op == nil {
		t.Fatalf("start: %v %v", op, err)
	}
	if got := e.waitOp(t, op.ID); got.Status != operation.Succeeded || got.Kind != opKindStart {
		t.Fatalf("start op: %+v", got)
	}
	v = e.waitState(t, "web", "Running")
	if v.RuntimeID == first.RuntimeID || v.IP == "" || v.Stopped {
		t.Fatalf("started view: %+v", v.Group)
	}
	if op, err := e.svc.StartGroup(ctx, "sub", "rg", "web"); err != nil || op != nil {
		t.Fatalf("start of a running group: %v %v", op, err)
	}
	// Restarted berth: a stopped group stays stopped.
	if err := e.svc.StopGroup(ctx, "sub", "rg", "web"); err != nil {
		t.Fatal(err)
	}
	e.svc.Close()
	e.start(t)
	if v := e.waitState(t, "web", "Stopped"); v.IP != "" {
		t.Fatalf("after restart: %+v", v.Group)
	}
	if ids, _ := e.rt.ListGroups(ctx); len(ids) != 0 {
		t.Fatalf("runtime groups of a stopped group: %v", ids)
	}
}

func TestStopMidwayFinishesOnStart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v := e.create(t, group("web", "Always"))
	e.svc.Close()
	// As if berth died after recording the stop, before doing it.
	if err := e.st.Update(ctx, func(tx store.Tx) error {
		g, err := getGroup(tx, "sub", "rg", "web")
		if err != nil {
			return err
		}
		g.Work = workStop
		return putGroup(tx, g)
	}); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	e.waitState(t, "web", "Stopped")
	if _, err := e.rt.Status(ctx, v.RuntimeID); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("runtime group survived the stop: %v", err)
	}
}

func TestTransitionsConflict(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	slow := group("web", "Always")
	slow.Containers[0].Image = "reg/slow:v1"
	if _, _, _, err := e.svc.CreateOrUpdate(ctx, slow); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"stop":    func() error { return e.svc.StopGroup(ctx, "sub", "rg", "web") },
		"start":   func() error { _, err := e.svc.StartGroup(ctx, "sub", "rg", "web"); return err },
		"restart": func() error { _, err := e.svc.RestartGroup(ctx, "sub", "rg", "web"); return err },
		"put":     func() error { _, _, _, err := e.svc.CreateOrUpdate(ctx, group("web", "Always")); return err },
	} {
		if err := call(); apierr.As(err).Code != "ContainerGroupTransitioning" {
			t.Errorf("%s while creating: %v", name, err)
		}
	}
	e.rt.ReleaseSlowPulls()
	e.waitState(t, "web", "Running")
	for _, op := range []string{"stop", "start", "restart"} {
		var err error
		switch op {
		case "stop":
			err = e.svc.StopGroup(ctx, "nope", "rg", "web")
		case "start":
			_, err = e.svc.StartGroup(ctx, "sub", "rg", "missing")
		case "restart":
			_, err = e.svc.RestartGroup(ctx, "sub", "rg", "missing")
		}
		if !apierr.Is(err, apierr.NotFound) {
			t.Errorf("%s of a missing group: %v", op, err)
		}
	}
}

func TestProvisionEndsWhenReplacedGroupCannotBeDeleted(t *testing.T) {
	e := newEnv(t)
	frt := &faultyRuntime{Runtime: e.rt}
	e.svc.Close()
	e.svc = &Service{Store: e.st, Runtime: frt, Resources: e.res, Operations: e.ops, Clock: e.svc.Clock, RetryDelay: 1}
	if err := e.svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.svc.Close)
	first := e.create(t, group("web", "Always"))
	frt.setFail(first.RuntimeID, true)
	_, _, op, err := e.svc.CreateOrUpdate(context.Background(), group("web", "Always"))
	if err != nil {
		t.Fatal(err)
	}
	got := e.waitOp(t, op.ID)
	if got.Status != operation.Failed || got.ErrorCode != "ContainerGroupDeploymentFailed" {
		t.Fatalf("op: %+v", got)
	}
	g, _ := e.svc.Get(context.Background(), "sub", "rg", "web")
	if g.ProvisioningState != Failed || g.Work != "" || len(g.Replaces) != 1 {
		t.Fatalf("group: %+v", g)
	}
	// Once the runtime can delete again, the next update succeeds and
	// leaves nothing of the old incarnations behind.
	frt.setFail(first.RuntimeID, false)
	last := e.create(t, group("web", "Always"))
	ids, _ := e.rt.ListGroups(context.Background())
	if len(ids) != 1 || ids[0] != last.RuntimeID {
		t.Fatalf("runtime groups %v, want only %s", ids, last.RuntimeID)
	}
}

func TestProvisionEndsAfterStoreFailures(t *testing.T) {
	e := newEnv(t)
	fst := &faultyStore{Store: e.st}
	e.svc.Close()
	e.svc = &Service{Store: fst, Runtime: e.rt, Resources: e.res, Operations: e.ops, Clock: e.svc.Clock, RetryDelay: 1}
	if err := e.svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	slow := group("web", "Always")
	slow.Containers[0].Image = "reg/slow:v1"
	_, _, op, err := e.svc.CreateOrUpdate(context.Background(), slow)
	if err != nil {
		t.Fatal(err)
	}
	// Every write of the background work fails a few times first.
	fst.failures.Store(5)
	e.rt.ReleaseSlowPulls()
	if got := e.waitOp(t, op.ID); got.Status != operation.Succeeded {
		t.Fatalf("op: %+v", got)
	}

	// A store that breaks after the request is stored: berth stops with the
	// work unfinished, the next start finishes it.
	fst.allow.Store(1)
	fst.broken.Store(true)
	_, _, op, err = e.svc.CreateOrUpdate(context.Background(), group("web", "Always"))
	if err != nil {
		t.Fatal(err)
	}
	e.waitOpRunning(t, op.ID)
	e.svc.Close()
	e.start(t)
	if got := e.waitOp(t, op.ID); got.Status != operation.Succeeded {
		t.Fatalf("resumed op: %+v", got)
	}
	v := e.waitState(t, "web", "Running")
	if ids, _ := e.rt.ListGroups(context.Background()); len(ids) != 1 || ids[0] != v.RuntimeID {
		t.Fatalf("runtime groups %v, want only %s", ids, v.RuntimeID)
	}
}

// waitOpRunning gives background work a moment to hit a broken store; it
// only checks that the operation has not ended.
func (e *env) waitOpRunning(t *testing.T, id string) {
	t.Helper()
	op, err := e.ops.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if op.Done() {
		t.Fatalf("operation ended early: %+v", op)
	}
}

type names struct {
	mu sync.Mutex
	m  map[string]string
}

func (n *names) Set(fqdn, ip string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ip == "" {
		delete(n.m, fqdn)
		return
	}
	n.m[fqdn] = ip
}

func (n *names) get(fqdn string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[fqdn]
}

func TestDNSNameLabels(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	nm := &names{m: map[string]string{}}
	e.svc.Names = nm
	labelled := func(name, label, scope, loc string) *Group {
		g := group(name, "Always")
		g.IPAddress.DNSNameLabel, g.IPAddress.AutoGeneratedDomainNameLabelScope, g.Location = label, scope, loc
		return g
	}
	v := e.create(t, labelled("one", "myapp1", "", "West US"))
	if v.Fqdn != "myapp1.westus.azurecontainer.io" {
		t.Fatalf("fqdn %q", v.Fqdn)
	}
	running := e.waitState(t, "one", "Running")
	if nm.get(v.Fqdn) != running.IP {
		t.Fatalf("published %q, want %q", nm.get(v.Fqdn), running.IP)
	}
	if _, _, _, err := e.svc.CreateOrUpdate(ctx, labelled("two", "myapp1", "", "westus")); apierr.As(err).Code != "DnsNameLabelNotAvailable" {
		t.Fatalf("taken label: %v", err)
	}
	other := e.create(t, labelled("two", "myapp1", "", "eastus"))
	if other.Fqdn != "myapp1.eastus.azurecontainer.io" {
		t.Fatalf("fqdn %q", other.Fqdn)
	}
	// Reuse scopes hash the scope into the name.
	scoped := e.create(t, labelled("three", "myapp1", "TenantReuse", "westus"))
	if !strings.HasPrefix(scoped.Fqdn, "myapp1-") || !strings.HasSuffix(scoped.Fqdn, ".westus.azurecontainer.io") || len(scoped.Fqdn) != len("myapp1-")+16+len(".westus.azurecontainer.io") {
		t.Fatalf("scoped fqdn %q", scoped.Fqdn)
	}
	// Stopping unpublishes; deleting frees the label for others.
	if err := e.svc.StopGroup(ctx, "sub", "rg", "one"); err != nil {
		t.Fatal(err)
	}
	if nm.get(v.Fqdn) != "" {
		t.Fatal("stopped group still published")
	}
	if _, err := e.svc.Delete(ctx, "sub", "rg", "one"); err != nil {
		t.Fatal(err)
	}
	e.create(t, labelled("four", "myapp1", "", "westus"))
}

func TestQuota(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.svc.Quota = Quota{ContainerGroups: 2, StandardCores: 3}
	e.create(t, group("a", "Always"))
	e.create(t, group("b", "Always"))
	_, _, _, err := e.svc.CreateOrUpdate(ctx, group("c", "Always"))
	if e := apierr.As(err); e.Code != "ContainerGroupQuotaReached" || !strings.Contains(e.Message, "'ContainerGroups'") {
		t.Fatalf("third group: %v", err)
	}
	// Replacing a group does not count it twice.
	e.create(t, group("b", "Always"))
	// Cores: a and b hold 2 of 3.
	if _, err := e.svc.Delete(ctx, "sub", "rg", "b"); err != nil {
		t.Fatal(err)
	}
	big := group("big", "Always")
	big.Containers[0].Requests.CPU = 2.5
	if _, _, _, err := e.svc.CreateOrUpdate(ctx, big); !strings.Contains(apierr.As(err).Message, "'StandardCores'") {
		t.Fatalf("cores: %v", err)
	}
	u, err := e.svc.Usage(ctx, "sub", "westus")
	if err != nil || u.ContainerGroups != 1 || u.StandardCores != 1 {
		t.Fatalf("usage %+v %v", u, err)
	}
}

func TestGPUPolicy(t *testing.T) {
	e := newEnv(t)
	g := group("gpu", "Always")
	g.Containers[0].Requests.GPU = &GPU{Count: 1, SKU: "V100"}
	e.svc.GPU = GPUPolicy{Refuse: true}
	if _, _, _, err := e.svc.CreateOrUpdate(context.Background(), g); apierr.As(err).Code != "ResourceRequestsNotAvailable" {
		t.Fatalf("refuse: %v", err)
	}
	e.svc.GPU = GPUPolicy{Refuse: true, HostSKUs: map[string]int{"V100": 1}}
	e.create(t, g)
}

func TestFailingInitContainerFailsTheGroup(t *testing.T) {
	e := newEnv(t)
	g := group("init", "Always")
	g.InitContainers = []Container{
		{Name: "first", Image: "reg/app:v1", Command: []string{"/app", "exit", "0"}},
		{Name: "second", Image: "reg/app:v1", Command: []string{"/app", "exit", "3"}},
	}
	_, _, op, err := e.svc.CreateOrUpdate(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	got := e.waitOp(t, op.ID)
	if got.Status != operation.Failed || got.ErrorCode != codeInitContainerFailed || !strings.Contains(got.ErrorMsg, "second") {
		t.Fatalf("op: %+v", got)
	}
	// The events land asynchronously; the view settles on the truth.
	var v *View
	for i := 0; i < 200; i++ {
		v, err = e.svc.View(context.Background(), "sub", "rg", "init")
		if err != nil {
			t.Fatal(err)
		}
		if st := v.InitContainers["second"].CurrentState; st.ExitCode != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if v.State != "Failed" || v.ProvisioningState != Failed {
		t.Fatalf("group: state %s provisioning %s", v.State, v.ProvisioningState)
	}
	first, second := v.InitContainers["first"].CurrentState, v.InitContainers["second"].CurrentState
	if first.State != "Terminated" || *first.ExitCode != 0 || first.DetailStatus != "Completed" {
		t.Errorf("first init container: %+v", first)
	}
	if second.State != "Terminated" || *second.ExitCode != 3 || second.DetailStatus != "Error" {
		t.Errorf("second init container: %+v", second)
	}
	if c := v.Containers["c"].CurrentState; c.State != "Waiting" {
		t.Errorf("container after a failed init: %+v", c)
	}
}
