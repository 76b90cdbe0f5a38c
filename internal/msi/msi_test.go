package msi

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store/memory"
)

const sub = "s-1"

func newService(t *testing.T) (*Service, *identity.Service) {
	t.Helper()
	st := memory.New()
	clk := clock.Real{}
	ids, err := identity.New(identity.Config{Store: st, KeyDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	res := &resources.Service{Store: st, Clock: clk, Operations: &operation.Tracker{Store: st, Clock: clk}}
	ctx := context.Background()
	res.EnsureSubscription(ctx, resources.Subscription{ID: sub, TenantID: identity.DefaultTenantID})
	res.CreateOrUpdate(ctx, resources.ResourceGroup{Subscription: sub, Name: "RG", Location: "westus"})
	s := &Service{Store: st, Clock: clk, Resources: res, Principals: ids}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return s, ids
}

// TestGetByResourceID is the lookup other services use (container groups'
// user-assigned identities).
func TestGetByResourceID(t *testing.T) {
	s, ids := newService(t)
	ctx := context.Background()
	in, created, err := s.Put(ctx, &Identity{Subscription: sub, ResourceGroup: "rg", Name: "web", Location: "westus"})
	if err != nil || !created {
		t.Fatalf("Put: %v %v", created, err)
	}
	if in.ResourceGroup != "RG" {
		t.Errorf("resource group %q, want the group's own spelling RG", in.ResourceGroup)
	}
	got, err := s.Get(ctx, strings.ToUpper(in.ID()))
	if err != nil {
		t.Fatal(err)
	}
	if got.PrincipalID != in.PrincipalID || got.ClientID != in.ClientID || got.TenantID != identity.DefaultTenantID {
		t.Fatalf("Get = %+v, want %+v", got, in)
	}
	p, err := ids.PrincipalByClientID(ctx, got.ClientID)
	if err != nil || p.ObjectID != got.PrincipalID {
		t.Fatalf("principal %+v %v", p, err)
	}
	for _, id := range []string{
		ResourceID(sub, "rg", "other"),
		"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web",
		"web",
		"",
	} {
		_, err := s.Get(ctx, id)
		if !errors.Is(err, ErrNotFound) || !apierr.Is(err, apierr.NotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

// TestStartRemovesOrphanPrincipals: a principal of a user-assigned identity
// without a record (a crash between writes) is removed at start; other
// managed identities (system-assigned) are left alone.
func TestStartRemovesOrphanPrincipals(t *testing.T) {
	s, ids := newService(t)
	ctx := context.Background()
	orphan, err := ids.CreateManagedIdentity(ctx, ResourceID(sub, "rg", "orphan"), "orphan")
	if err != nil {
		t.Fatal(err)
	}
	system, err := ids.CreateManagedIdentity(ctx, "/subscriptions/"+sub+"/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/g", "g")
	if err != nil {
		t.Fatal(err)
	}
	kept, _, err := s.Put(ctx, &Identity{Subscription: sub, ResourceGroup: "rg", Name: "kept", Location: "westus"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if ids.Live(orphan.ObjectID) {
		t.Error("orphan principal survived Start")
	}
	if !ids.Live(system.ObjectID) || !ids.Live(kept.PrincipalID) {
		t.Error("Start removed a principal that has its resource")
	}
}

func TestParseID(t *testing.T) {
	sub, rg, name, ok := ParseID("/subscriptions/S/resourcegroups/R/providers/microsoft.managedidentity/USERASSIGNEDIDENTITIES/n")
	if !ok || sub != "S" || rg != "R" || name != "n" {
		t.Fatalf("%q %q %q %v", sub, rg, name, ok)
	}
	for _, bad := range []string{"", "/subscriptions/S/resourceGroups/R", "/subscriptions/S/resourceGroups/R/providers/Microsoft.ManagedIdentity/userAssignedIdentities/n/x",
		"/subscriptions//resourceGroups/R/providers/Microsoft.ManagedIdentity/userAssignedIdentities/n"} {
		if _, _, _, ok := ParseID(bad); ok {
			t.Errorf("ParseID(%q) ok", bad)
		}
	}
}
