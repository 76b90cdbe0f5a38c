package rbac

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/store/memory"
)

const (
	sub      = "/subscriptions/be127000-0000-4000-8000-000000000002"
	rg1      = sub + "/resourceGroups/rg1"
	reg1     = rg1 + "/providers/Microsoft.ContainerRegistry/registries/reg1"
	defOID   = "be127000-0000-4000-8000-000000000004"
	alice    = "11111111-1111-4111-8111-111111111111"
	bob      = "22222222-2222-4222-8222-222222222222"
	nobody   = "33333333-3333-4333-8333-333333333333"
	nameA    = "aaaaaaaa-0000-4000-8000-000000000001"
	nameB    = "aaaaaaaa-0000-4000-8000-000000000002"
	nameC    = "aaaaaaaa-0000-4000-8000-000000000003"
	cgWrite  = "Microsoft.ContainerInstance/containerGroups/write"
	cgRead   = "Microsoft.ContainerInstance/containerGroups/read"
	raWrite  = "Microsoft.Authorization/roleAssignments/write"
	raDelete = "Microsoft.Authorization/roleAssignments/delete"
	raRead   = "Microsoft.Authorization/roleAssignments/read"
)

type known map[string]bool

func (k known) Exists(_ context.Context, oid string) bool { return k[strings.ToLower(oid)] }

func newService(t *testing.T, st *memory.Store, clk clock.Clock) *Service {
	t.Helper()
	s := &Service{Store: st, Clock: clk, Principals: known{defOID: true, alice: true, bob: true},
		DefaultPrincipal: defOID, DefaultScope: sub, TenantID: "be127000-0000-4000-8000-000000000001"}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func code(err error) string {
	if err == nil {
		return ""
	}
	return apierr.As(err).Code
}

func TestBuiltInRoles(t *testing.T) {
	s := newService(t, memory.New(), clock.NewFake(time.Unix(1700000000, 0)))
	cases := []struct {
		role, action string
		want         bool
	}{
		{Owner, raWrite, true},
		{Owner, "Microsoft.Anything/at/all", true},
		{Contributor, cgWrite, true},
		{Contributor, raWrite, false},
		{Contributor, raDelete, false},
		{Contributor, "microsoft.authorization/ROLEASSIGNMENTS/write", false},
		{Contributor, raRead, true},
		{Contributor, "Microsoft.Authorization/elevateAccess/Action", false},
		{Reader, cgRead, true},
		{Reader, raRead, true},
		{Reader, cgWrite, false},
		{Reader, "Microsoft.ContainerInstance/containerGroups/restart/action", false},
		{Reader, ActionRegistryPull, true},
		{AcrPull, ActionRegistryPull, true},
		{AcrPull, ActionRegistryPush, false},
		{AcrPull, cgRead, false},
		{AcrPush, ActionRegistryPull, true},
		{AcrPush, ActionRegistryPush, true},
		{AcrPush, ActionRegistryDelete, false},
		{AcrDelete, ActionRegistryDelete, true},
		{AcrDelete, ActionRegistryPull, false},
	}
	for _, c := range cases {
		d, ok := s.RoleDefinition(c.role)
		if !ok {
			t.Fatalf("role %s missing", c.role)
		}
		if got := d.Permits(c.action); got != c.want {
			t.Errorf("%s permits %s = %v, want %v", d.RoleName, c.action, got, c.want)
		}
	}
	names := []string{}
	for _, d := range s.RoleDefinitions() {
		names = append(names, d.RoleName)
	}
	if got := strings.Join(names, ","); got != "AcrDelete,AcrImageSigner,AcrPull,AcrPush,AcrQuarantineReader,AcrQuarantineWriter,Contributor,Owner,Reader" {
		t.Fatalf("roles: %s", got)
	}
	signer, _ := s.RoleDefinition(AcrImageSigner)
	if !signer.permits("Microsoft.ContainerRegistry/registries/trustedCollections/write", true) || signer.permits("Microsoft.ContainerRegistry/registries/trustedCollections/write", false) {
		t.Fatal("data actions are separate from actions")
	}
}

func TestPatterns(t *testing.T) {
	cases := []struct {
		pat, action string
		want        bool
	}{
		{"*", "a/b/c", true},
		{"*/read", "microsoft.x/y/read", true},
		{"*/read", "microsoft.x/y/readx", false},
		{"microsoft.authorization/*/delete", "microsoft.authorization/roleassignments/delete", true},
		{"microsoft.authorization/*/delete", "microsoft.authorization/policy/exemptions/delete", true},
		{"microsoft.authorization/*/delete", "microsoft.authorizationx/a/delete", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "ac", false},
		{"ab*ba", "aba", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
	}
	for _, c := range cases {
		if got := compileAll([]string{c.pat})[0].match(c.action); got != c.want {
			t.Errorf("%q ~ %q = %v, want %v", c.pat, c.action, got, c.want)
		}
	}
}

func TestBootstrapOwner(t *testing.T) {
	st := memory.New()
	clk := clock.NewFake(time.Unix(1700000000, 0))
	s := newService(t, st, clk)
	ctx := context.Background()
	if !s.Allowed(ctx, defOID, raWrite, sub) || !s.Allowed(ctx, strings.ToUpper(defOID), cgWrite, strings.ToUpper(reg1)) {
		t.Fatal("the default principal is Owner of the default subscription")
	}
	if s.Allowed(ctx, defOID, cgRead, "/subscriptions/other") || s.Allowed(ctx, defOID, cgRead, "/") {
		t.Fatal("only of the default subscription")
	}
	list := s.List(ctx, Filter{Scope: sub})
	if len(list) != 1 || list[0].Name != BootstrapName || list[0].RoleDefinitionID != Owner || list[0].Scope != sub {
		t.Fatalf("bootstrap assignment: %+v", list)
	}
	// A restart keeps it (same creation time), and re-creates it when gone.
	clk.Advance(time.Hour)
	s2 := newService(t, st, clk)
	if a, err := s2.Get(ctx, sub, BootstrapName); err != nil || !a.CreatedOn.Equal(list[0].CreatedOn) {
		t.Fatalf("after restart: %v %+v", err, a)
	}
	if _, err := s2.Delete(ctx, sub, BootstrapName); err != nil {
		t.Fatal(err)
	}
	if s2.Allowed(ctx, defOID, cgRead, sub) {
		t.Fatal("deleted, not allowed")
	}
	s3 := newService(t, st, clk)
	if !s3.Allowed(ctx, defOID, cgRead, sub) {
		t.Fatal("re-created at start")
	}
}

func TestScopesBySegment(t *testing.T) {
	s := newService(t, memory.New(), clock.NewFake(time.Unix(1700000000, 0)))
	ctx := context.Background()
	if _, _, err := s.Create(ctx, Assignment{Name: nameA, Scope: rg1, RoleDefinitionID: "/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/" + Contributor, PrincipalID: alice}, defOID); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		scope string
		want  bool
	}{
		{rg1, true},
		{strings.ToUpper(rg1), true},
		{rg1 + "/", true},
		{reg1, true},
		{sub + "/resourceGroups/rg10", false},
		{sub + "/resourceGroups/rg", false},
		{sub, false},
		{"/", false},
	}
	for _, c := range cases {
		if got := s.Allowed(ctx, alice, cgWrite, c.scope); got != c.want {
			t.Errorf("Allowed at %s = %v, want %v", c.scope, got, c.want)
		}
	}
	if !s.AllowedBelow(ctx, alice, cgRead, sub) || !s.AllowedBelow(ctx, alice, cgRead, "/") {
		t.Fatal("AllowedBelow sees the resource group's assignment from above")
	}
	if s.AllowedBelow(ctx, alice, cgRead, sub+"/resourceGroups/rg10") || s.AllowedBelow(ctx, alice, raWrite, sub) {
		t.Fatal("AllowedBelow: other groups, or actions the role lacks")
	}
	if s.Allowed(ctx, nobody, cgRead, rg1) || s.Allowed(ctx, "", cgRead, rg1) {
		t.Fatal("no assignment, no access")
	}
}

func TestCreateErrors(t *testing.T) {
	clk := clock.NewFake(time.Unix(1700000000, 0))
	s := newService(t, memory.New(), clk)
	ctx := context.Background()
	pull := "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/" + AcrPull
	a, created, err := s.Create(ctx, Assignment{Name: strings.ToUpper(nameA), Scope: reg1, RoleDefinitionID: pull, PrincipalID: alice, Description: "d"}, defOID)
	if err != nil || !created || a.Name != nameA || a.PrincipalType != "ServicePrincipal" || a.CreatedBy != defOID || !a.CreatedOn.Equal(clk.Now()) {
		t.Fatalf("create: %v %v %+v", err, created, a)
	}
	if a.ID() != reg1+"/providers/Microsoft.Authorization/roleAssignments/"+nameA {
		t.Fatalf("id %s", a.ID())
	}
	clk.Advance(time.Minute)
	// Same name, same principal/role/scope: an update of what may change.
	a2, created, err := s.Create(ctx, Assignment{Name: nameA, Scope: strings.ToLower(reg1), RoleDefinitionID: AcrPull, PrincipalID: alice, Description: "e", Condition: "true"}, bob)
	if err != nil || created || a2.Description != "e" || a2.ConditionVersion != "2.0" || !a2.CreatedOn.Equal(a.CreatedOn) || !a2.UpdatedOn.Equal(clk.Now()) || a2.UpdatedBy != bob || a2.Scope != reg1 {
		t.Fatalf("update: %v %v %+v", err, created, a2)
	}
	cases := []struct {
		in   Assignment
		code string
	}{
		{Assignment{Name: "not-a-guid", Scope: reg1, RoleDefinitionID: pull, PrincipalID: alice}, "InvalidRoleAssignmentId"},
		{Assignment{Name: nameB, Scope: reg1, RoleDefinitionID: pull, PrincipalID: "alice"}, "InvalidPrincipalId"},
		{Assignment{Name: nameB, Scope: reg1, RoleDefinitionID: "Owner", PrincipalID: alice}, "InvalidRoleDefinitionId"},
		{Assignment{Name: nameB, Scope: reg1, RoleDefinitionID: "/providers/Microsoft.Authorization/roleDefinitions/" + nameC, PrincipalID: alice}, "RoleDefinitionDoesNotExist"},
		{Assignment{Name: nameB, Scope: reg1, RoleDefinitionID: pull, PrincipalID: nobody}, "PrincipalNotFound"},
		{Assignment{Name: nameB, Scope: reg1, RoleDefinitionID: pull, PrincipalID: alice, PrincipalType: "Robot"}, "InvalidPrincipalType"},
		{Assignment{Name: nameB, Scope: strings.ToUpper(reg1), RoleDefinitionID: pull, PrincipalID: strings.ToUpper(alice)}, "RoleAssignmentExists"},
		{Assignment{Name: nameA, Scope: reg1, RoleDefinitionID: pull, PrincipalID: bob}, "RoleAssignmentUpdateNotPermitted"},
		{Assignment{Name: nameA, Scope: rg1, RoleDefinitionID: pull, PrincipalID: alice}, "RoleAssignmentUpdateNotPermitted"},
		{Assignment{Name: nameA, Scope: reg1, RoleDefinitionID: Reader, PrincipalID: alice}, "RoleAssignmentUpdateNotPermitted"},
	}
	for _, c := range cases {
		if _, _, err := s.Create(ctx, c.in, defOID); code(err) != c.code {
			t.Errorf("%+v: %v, want %s", c.in, err, c.code)
		}
	}
	if e := apierr.As(func() error { _, _, err := s.Create(ctx, cases[6].in, defOID); return err }()); e.Class != apierr.Conflict {
		t.Fatalf("RoleAssignmentExists is a conflict: %v", e)
	}
	if len(s.Of(alice)) != 1 {
		t.Fatalf("nothing half-created: %+v", s.Of(alice))
	}
}

func TestGetDeleteList(t *testing.T) {
	st := memory.New()
	s := newService(t, st, clock.NewFake(time.Unix(1700000000, 0)))
	ctx := context.Background()
	mk := func(name, scope, role, p string) {
		t.Helper()
		if _, _, err := s.Create(ctx, Assignment{Name: name, Scope: scope, RoleDefinitionID: role, PrincipalID: p}, defOID); err != nil {
			t.Fatal(err)
		}
	}
	mk(nameA, rg1, Reader, alice)
	mk(nameB, reg1, AcrPush, alice)
	mk(nameC, sub, Reader, bob)

	if _, err := s.Get(ctx, sub, nameA); code(err) != "RoleAssignmentNotFound" {
		t.Fatalf("get at another scope: %v", err)
	}
	if _, err := s.Get(ctx, "/", "x"); code(err) != "InvalidRoleAssignmentId" {
		t.Fatalf("get bad name: %v", err)
	}
	if a, err := s.Get(ctx, strings.ToUpper(rg1), strings.ToUpper(nameA)); err != nil || a.Name != nameA {
		t.Fatalf("get: %v %+v", err, a)
	}
	names := func(as []*Assignment) string {
		var out []string
		for _, a := range as {
			out = append(out, a.Name[len(a.Name)-1:])
		}
		return strings.Join(out, "")
	}
	// Names end in 1, 2, 3; the bootstrap assignment's (be127…) in 0 and
	// sorts last.
	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{Scope: sub}, "1230"},
		{Filter{Scope: rg1}, "1230"},
		{Filter{Scope: rg1, AtScope: true}, "130"},
		{Filter{Scope: reg1, AtScope: true}, "1230"},
		{Filter{Scope: sub, AtScope: true}, "30"},
		{Filter{Scope: sub, PrincipalID: strings.ToUpper(alice)}, "12"},
		{Filter{Scope: sub, RoleDefinitionID: Reader}, "13"},
		{Filter{Scope: "/subscriptions/other"}, ""},
		{Filter{Scope: "/"}, "1230"},
	} {
		if got := names(s.List(ctx, c.f)); got != c.want {
			t.Errorf("list %+v = %q, want %q", c.f, got, c.want)
		}
	}
	// Delete: gone from decisions at once and from the store; absent is nil.
	if !s.Allowed(ctx, alice, ActionRegistryPush, reg1) {
		t.Fatal("AcrPush grants push")
	}
	if a, err := s.Delete(ctx, reg1, nameB); err != nil || a == nil {
		t.Fatalf("delete: %v %v", err, a)
	}
	if s.Allowed(ctx, alice, ActionRegistryPush, reg1) {
		t.Fatal("deleted assignment still grants")
	}
	if a, err := s.Delete(ctx, reg1, nameB); err != nil || a != nil {
		t.Fatalf("delete again: %v %v", err, a)
	}
	s2 := newService(t, st, clock.NewFake(time.Unix(1700000000, 0)))
	if names(s2.Of(alice)) != "1" || !s2.Allowed(ctx, alice, cgRead, reg1) {
		t.Fatalf("after restart: %+v", s2.Of(alice))
	}
}

func TestParseRoleDefinitionID(t *testing.T) {
	for in, want := range map[string]string{
		"/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/" + AcrPull:                AcrPull,
		"/providers/microsoft.authorization/roledefinitions/" + strings.ToUpper(Owner):                 Owner,
		"/subscriptions/s/resourceGroups/r/providers/Microsoft.Authorization/roleDefinitions/" + Owner: "",
		"/providers/Microsoft.Authorization/roleDefinitions/Owner":                                     "",
	} {
		got, ok := ParseRoleDefinitionID(in)
		if got != want || ok != (want != "") {
			t.Errorf("%s: %q %v", in, got, ok)
		}
	}
	if RoleDefinitionID(reg1, Owner) != sub+"/providers/Microsoft.Authorization/roleDefinitions/"+Owner ||
		RoleDefinitionID("/", Owner) != "/providers/Microsoft.Authorization/roleDefinitions/"+Owner {
		t.Fatal("RoleDefinitionID")
	}
}

// BenchmarkAllowed: the cost of one decision (the ARM front door makes one
// per request) for a principal with a few assignments.
func BenchmarkAllowed(b *testing.B) {
	st := memory.New()
	s := &Service{Store: st, Clock: clock.Real{}, DefaultPrincipal: defOID, DefaultScope: sub}
	if err := s.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i, role := range []string{AcrPull, Reader, Contributor} {
		name := strings.Replace(nameA, "1", string(rune('4'+i)), 1)
		if _, _, err := s.Create(ctx, Assignment{Name: name, Scope: rg1, RoleDefinitionID: role, PrincipalID: defOID}, ""); err != nil {
			b.Fatal(err)
		}
	}
	scope := reg1 + "/providers/Microsoft.ContainerInstance/containerGroups/cg1"
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !s.Allowed(ctx, defOID, cgRead, scope) {
			b.Fatal("denied")
		}
	}
}
