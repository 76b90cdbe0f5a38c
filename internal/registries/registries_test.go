package registries

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store/memory"
)

// fakeHost records what it serves; addresses in busy are "taken".
type fakeHost struct {
	mu     sync.Mutex
	served map[string]string
	purged []string
	busy   map[string]bool
}

func (h *fakeHost) Serve(_ context.Context, r *Registry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.busy[r.LoginServer] {
		return fmt.Errorf("listen %s: %w", r.LoginServer, ErrAddressInUse)
	}
	h.served[strings.ToLower(r.Name)] = r.LoginServer
	return nil
}

func (h *fakeHost) Stop(_ context.Context, name string, purge bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.served, strings.ToLower(name))
	if purge {
		h.purged = append(h.purged, name)
	}
	return nil
}

func (h *fakeHost) Size(context.Context, string) (int64, error) { return 42, nil }

type fakeImporter struct{ got []ImportRequest }

func (f *fakeImporter) Import(_ context.Context, _ *Registry, req ImportRequest) error {
	f.got = append(f.got, req)
	if strings.Contains(req.SourceImage, "missing") {
		return apierr.New(apierr.Invalid, "SourceImageNotFound", "not found")
	}
	return nil
}

type env struct {
	svc  *Service
	host *fakeHost
	imp  *fakeImporter
	res  *resources.Service
	ops  *operation.Tracker
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := memory.New()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &resources.Service{Store: st, Clock: clk, Operations: ops}
	e := &env{host: &fakeHost{served: map[string]string{}, busy: map[string]bool{}}, imp: &fakeImporter{}, res: res, ops: ops}
	e.svc = &Service{Store: st, Clock: clk, Resources: res, Operations: ops, Host: e.host, Importer: e.imp, Reserved: []string{"berth"},
		LoginHost: "127.0.0.1", FirstPort: 6001}
	ctx := context.Background()
	if err := e.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Close(); e.svc.Close() })
	if err := res.EnsureSubscription(ctx, resources.Subscription{ID: "sub", TenantID: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := res.CreateOrUpdate(ctx, resources.ResourceGroup{Subscription: "sub", Name: "rg", Location: "westus"}); err != nil {
		t.Fatal(err)
	}
	return e
}

func reg(name string) *Registry {
	return &Registry{Subscription: "sub", ResourceGroup: "rg", Name: name, Location: "westus", SKU: "standard"}
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r, created, err := e.svc.CreateOrUpdate(ctx, reg("myRegistry1"))
	if err != nil || !created {
		t.Fatalf("create: %v %v", err, created)
	}
	if r.LoginServer != "127.0.0.1:6001" || r.SKU != "Standard" || r.ProvisioningState != "Succeeded" || r.Passwords[0] == "" || r.Passwords[0] == r.Passwords[1] {
		t.Fatalf("created %+v", r)
	}
	// Names are global and case-insensitive.
	if ok, reason, _, _ := e.svc.NameAvailable(ctx, "MYREGISTRY1"); ok || reason != "AlreadyExists" {
		t.Fatalf("name availability: %v %s", ok, reason)
	}
	if ok, reason, _, _ := e.svc.NameAvailable(ctx, "berth"); ok || reason != "AlreadyExists" {
		t.Fatalf("reserved name: %v %s", ok, reason)
	}
	if ok, reason, _, _ := e.svc.NameAvailable(ctx, "bad-name"); ok || reason != "Invalid" {
		t.Fatalf("invalid name: %v %s", ok, reason)
	}
	other := reg("myregistry1")
	other.ResourceGroup = "rg"
	// Same name again in the same group: an update, not a conflict.
	if _, created, err := e.svc.CreateOrUpdate(ctx, other); err != nil || created {
		t.Fatalf("re-PUT: %v created=%v", err, created)
	}
	// Admin user: off by default, then on.
	if _, err := e.svc.Credentials(ctx, "sub", "rg", "myRegistry1"); apierr.As(err).Code != "UnAuthorizedForCredentialOperations" {
		t.Fatalf("credentials with admin disabled: %v", err)
	}
	on := true
	if _, err := e.svc.Patch(ctx, "sub", "rg", "myregistry1", Update{AdminUserEnabled: &on}); err != nil {
		t.Fatal(err)
	}
	c, err := e.svc.Credentials(ctx, "sub", "rg", "myRegistry1")
	if err != nil {
		t.Fatal(err)
	}
	gen1, ok1 := e.svc.CheckAdmin("myregistry1", "myRegistry1", c.Passwords[1])
	if _, bad := e.svc.CheckAdmin("myregistry1", "myRegistry1", "nope"); !ok1 || bad || gen1 != c.PasswordGens[1] || !e.svc.AdminCurrent("myregistry1", gen1) {
		t.Fatal("CheckAdmin")
	}
	gen0, _ := e.svc.CheckAdmin("myregistry1", "myRegistry1", c.Passwords[0])
	old := c.Passwords[0]
	c2, err := e.svc.Regenerate(ctx, "sub", "rg", "myRegistry1", "password")
	if err != nil || c2.Passwords[0] == old || c2.Passwords[1] != c.Passwords[1] {
		t.Fatalf("regenerate: %v", err)
	}
	if _, ok := e.svc.CheckAdmin("myregistry1", "myRegistry1", old); ok {
		t.Fatal("old password still accepted")
	}
	if e.svc.AdminCurrent("myregistry1", gen0) || !e.svc.AdminCurrent("myregistry1", gen1) {
		t.Fatal("regenerating password revokes only tokens of that password")
	}
	if _, err := e.svc.Regenerate(ctx, "sub", "rg", "myRegistry1", "password3"); !apierr.Is(err, apierr.Invalid) {
		t.Fatalf("regenerate password3: %v", err)
	}
	// Anonymous pull: not on Basic.
	basic := "Basic"
	if _, err := e.svc.Patch(ctx, "sub", "rg", "myregistry1", Update{SKU: &basic, AnonymousPullEnabled: &on}); !apierr.Is(err, apierr.Invalid) {
		t.Fatalf("anonymous pull on Basic: %v", err)
	}
	if _, err := e.svc.Patch(ctx, "sub", "rg", "myregistry1", Update{AnonymousPullEnabled: &on}); err != nil || !e.svc.AnonymousPull("MyRegistry1") {
		t.Fatalf("anonymous pull: %v", err)
	}
	// Delete purges and frees the name.
	if _, err := e.svc.Delete(ctx, "sub", "rg", "myregistry1"); err != nil {
		t.Fatal(err)
	}
	if len(e.host.purged) != 1 || e.svc.ByName("myregistry1") != nil {
		t.Fatalf("purged %v", e.host.purged)
	}
	if ok, _, _, _ := e.svc.NameAvailable(ctx, "myRegistry1"); !ok {
		t.Fatal("name not free after delete")
	}
	// Re-created: a new incarnation on a new login server (ports are never
	// reused), skipping a busy one.
	e.host.busy["127.0.0.1:6002"] = true
	again, _, err := e.svc.CreateOrUpdate(ctx, reg("myRegistry1"))
	if err != nil {
		t.Fatal(err)
	}
	if again.LoginServer != "127.0.0.1:6003" || again.UID == r.UID || again.UID == "" {
		t.Fatalf("re-created on %s uid %s (old uid %s)", again.LoginServer, again.UID, r.UID)
	}
}

func TestValidationAndRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for name, r := range map[string]*Registry{
		"short":    reg("abc"),
		"hyphen":   reg("my-registry"),
		"sku":      func() *Registry { r := reg("goodname1"); r.SKU = "Gold"; return r }(),
		"location": func() *Registry { r := reg("goodname2"); r.Location = ""; return r }(),
		"rg":       func() *Registry { r := reg("goodname3"); r.ResourceGroup = "nope"; return r }(),
	} {
		if _, _, err := e.svc.CreateOrUpdate(ctx, r); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if list, _ := e.svc.List(ctx, "sub", ""); len(list) != 0 {
		t.Fatalf("stored %d", len(list))
	}
	r, _, err := e.svc.CreateOrUpdate(ctx, reg("keepme1"))
	if err != nil {
		t.Fatal(err)
	}
	moved := reg("keepme1")
	moved.Location = "eastus"
	if _, _, err := e.svc.CreateOrUpdate(ctx, moved); apierr.As(err).Code != "InvalidResourceLocation" {
		t.Fatalf("location change: %v", err)
	}
	// A restart serves it again on the same login server.
	e.host.mu.Lock()
	e.host.served = map[string]string{}
	e.host.mu.Unlock()
	if err := e.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if e.host.served["keepme1"] != r.LoginServer {
		t.Fatalf("after restart served on %q, want %q", e.host.served["keepme1"], r.LoginServer)
	}
	// Deleting the resource group deletes the registry.
	op, err := e.res.BeginDelete(ctx, "sub", "rg")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if got, _ := e.ops.Get(ctx, op.ID); got.Done() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if e.svc.ByName("keepme1") != nil || len(e.host.purged) != 1 {
		t.Fatalf("registry survived its resource group: purged %v", e.host.purged)
	}
}

func TestImport(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, _, err := e.svc.CreateOrUpdate(ctx, reg("target1")); err != nil {
		t.Fatal(err)
	}
	wait := func(id string) *operation.Operation {
		for i := 0; i < 200; i++ {
			if op, _ := e.ops.Get(ctx, id); op.Done() {
				return op
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatal("import did not finish")
		return nil
	}
	op, err := e.svc.BeginImport(ctx, "sub", "rg", "target1", ImportRequest{SourceRegistry: "127.0.0.1:6001", SourceImage: "app:v1", TargetTags: []string{"app:v1"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := wait(op.ID); got.Status != operation.Succeeded {
		t.Fatalf("import: %+v", got)
	}
	op, _ = e.svc.BeginImport(ctx, "sub", "rg", "target1", ImportRequest{SourceRegistry: "127.0.0.1:6001", SourceImage: "missing:v1"})
	if got := wait(op.ID); got.Status != operation.Failed || got.ErrorCode != "SourceImageNotFound" {
		t.Fatalf("failed import: %+v", got)
	}
	if _, err := e.svc.BeginImport(ctx, "sub", "rg", "target1", ImportRequest{}); !apierr.Is(err, apierr.Invalid) {
		t.Fatalf("empty import: %v", err)
	}
	src, err := e.svc.ResolveSource(ctx, "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/target1")
	if err != nil || src != "127.0.0.1:6001" {
		t.Fatalf("resolve: %q %v", src, err)
	}
	if _, err := e.svc.ResolveSource(ctx, "/subscriptions/sub/resourceGroups/rg"); !apierr.Is(err, apierr.Invalid) {
		t.Fatalf("resolve bad id: %v", err)
	}
}
