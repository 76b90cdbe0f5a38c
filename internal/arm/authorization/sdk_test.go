package authorization

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	sdk "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/rbac"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store/memory"
)

const (
	tenant = "be127000-0000-4000-8000-000000000001"
	subID  = "be127000-0000-4000-8000-000000000002"
	sub    = "/subscriptions/" + subID
	owner  = "be127000-0000-4000-8000-000000000004"
	alice  = "11111111-1111-4111-8111-111111111111"
	bob    = "22222222-2222-4222-8222-222222222222"
	ghost  = "33333333-3333-4333-8333-333333333333"
	nameA  = "aaaaaaaa-0000-4000-8000-000000000001"
	nameB  = "aaaaaaaa-0000-4000-8000-000000000002"
	nameC  = "aaaaaaaa-0000-4000-8000-000000000003"
	reg    = sub + "/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg1"
)

// bearerAuth: the token is the caller's object id.
type bearerAuth struct{}

func (bearerAuth) Authenticate(r *http.Request) (arm.Principal, error) {
	oid, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return arm.Principal{}, apierr.New(apierr.Unauthenticated, "InvalidAuthenticationToken", "no token")
	}
	return arm.Principal{TenantID: tenant, ObjectID: oid}, nil
}

type authz struct{ s *rbac.Service }

func (a authz) Allowed(ctx context.Context, p arm.Principal, action, scope string) bool {
	return a.s.Allowed(ctx, p.ObjectID, action, scope)
}
func (a authz) AllowedBelow(ctx context.Context, p arm.Principal, action, scope string) bool {
	return a.s.AllowedBelow(ctx, p.ObjectID, action, scope)
}

type directory map[string]bool

func (d directory) Exists(_ context.Context, oid string) bool { return d[strings.ToLower(oid)] }

type cred string

func (c cred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(c), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

type env struct {
	roles *rbac.Service
	url   string
	opts  *azarm.ClientOptions
}

func newEnv(t *testing.T, pageSize int) *env {
	t.Helper()
	ctx := context.Background()
	st := memory.New()
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &resources.Service{Store: st, Clock: clk, Operations: ops}
	if err := res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	if err := res.EnsureSubscription(ctx, resources.Subscription{ID: subID, TenantID: tenant, DisplayName: "x", State: "Enabled"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := res.CreateOrUpdate(ctx, resources.ResourceGroup{Subscription: subID, Name: "rg", Location: "westus"}); err != nil {
		t.Fatal(err)
	}
	roles := &rbac.Service{Store: st, Clock: clk, Principals: directory{owner: true, alice: true, bob: true},
		DefaultPrincipal: owner, DefaultScope: sub, TenantID: tenant}
	if err := roles.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s := &arm.Server{Auth: bearerAuth{}, Authz: authz{roles}, Resources: res, Operations: ops, Clock: clk}
	s.HandleCore()
	(&API{ARM: s, Service: roles, PageSize: pageSize}).Register()
	ts := httptest.NewTLSServer(s)
	t.Cleanup(ts.Close)
	cfg := cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
		cloud.ResourceManager: {Audience: "https://management.core.windows.net/", Endpoint: ts.URL}}}
	return &env{roles: roles, url: ts.URL, opts: &azarm.ClientOptions{ClientOptions: policy.ClientOptions{Cloud: cfg, Transport: ts.Client()}}}
}

func (e *env) clients(t *testing.T, as string) (*sdk.RoleAssignmentsClient, *sdk.RoleDefinitionsClient) {
	t.Helper()
	f, err := sdk.NewClientFactory(subID, cred(as), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	return f.NewRoleAssignmentsClient(), f.NewRoleDefinitionsClient()
}

func errCode(err error) (int, string) {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode, re.ErrorCode
	}
	return 0, ""
}

func roleID(guid string) string {
	return sub + "/providers/Microsoft.Authorization/roleDefinitions/" + guid
}

func create(role, principal string) sdk.RoleAssignmentCreateParameters {
	return sdk.RoleAssignmentCreateParameters{Properties: &sdk.RoleAssignmentProperties{
		RoleDefinitionID: to.Ptr(roleID(role)), PrincipalID: to.Ptr(principal), PrincipalType: to.Ptr(sdk.PrincipalTypeServicePrincipal)}}
}

func names[T any](items []*T, name func(*T) string) string {
	var out []string
	for _, it := range items {
		out = append(out, name(it)[len(name(it))-1:])
	}
	return strings.Join(out, "")
}

func raName(a *sdk.RoleAssignment) string { return *a.Name }

// TestRoleAssignmentsWithSDK drives role assignments through
// armauthorization/v2: create at resource-group and resource scope, get
// (by scope and name, and by id), the lists and their $filter forms,
// ARM's errors, delete (by name and by id; absent answers 204).
func TestRoleAssignmentsWithSDK(t *testing.T) {
	e := newEnv(t, 2)
	ctx := context.Background()
	ra, _ := e.clients(t, owner)

	got, err := ra.Create(ctx, "subscriptions/"+subID+"/resourceGroups/rg", nameA, create(rbac.Reader, alice), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := got.Properties
	if *got.ID != sub+"/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments/"+nameA || *got.Name != nameA ||
		*got.Type != "Microsoft.Authorization/roleAssignments" || *p.Scope != sub+"/resourceGroups/rg" ||
		*p.RoleDefinitionID != roleID(rbac.Reader) || *p.PrincipalID != alice || *p.PrincipalType != sdk.PrincipalTypeServicePrincipal ||
		*p.CreatedBy != owner || p.CreatedOn.IsZero() || p.Condition != nil {
		t.Fatalf("created: %+v %+v", got, p)
	}
	params := create(rbac.AcrPull, alice)
	params.Properties.Condition = to.Ptr("@Resource[x] StringEquals 'y'")
	params.Properties.Description = to.Ptr("pull only")
	got, err = ra.Create(ctx, reg, nameB, params, nil)
	if err != nil || *got.Properties.ConditionVersion != "2.0" || *got.Properties.Description != "pull only" || *got.Properties.Scope != reg {
		t.Fatalf("create at a resource: %v %+v", err, got)
	}
	if _, err := ra.Create(ctx, sub, nameC, create(rbac.Contributor, bob), nil); err != nil {
		t.Fatal(err)
	}

	// Errors, as ARM answers them.
	for _, c := range []struct {
		scope, name string
		params      sdk.RoleAssignmentCreateParameters
		status      int
		code        string
	}{
		{reg, "aaaaaaaa-0000-4000-8000-000000000009", create(rbac.AcrPull, alice), 409, "RoleAssignmentExists"},
		{reg, "aaaaaaaa-0000-4000-8000-000000000009", create(rbac.AcrPull, ghost), 400, "PrincipalNotFound"},
		{reg, "aaaaaaaa-0000-4000-8000-000000000009", create("aaaaaaaa-1111-4000-8000-000000000009", alice), 400, "RoleDefinitionDoesNotExist"},
		{reg, "not-a-guid", create(rbac.AcrPull, alice), 400, "InvalidRoleAssignmentId"},
		{reg, nameA, create(rbac.AcrPull, alice), 400, "RoleAssignmentUpdateNotPermitted"},
		{sub + "/resourceGroups/nope", "aaaaaaaa-0000-4000-8000-000000000009", create(rbac.AcrPull, alice), 404, "ResourceGroupNotFound"},
	} {
		_, err := ra.Create(ctx, c.scope, c.name, c.params, nil)
		if st, code := errCode(err); st != c.status || code != c.code {
			t.Errorf("create %s at %s: %v, want %d %s", c.name, c.scope, err, c.status, c.code)
		}
	}

	g, err := ra.Get(ctx, reg, nameB, nil)
	if err != nil || *g.ID != reg+"/providers/Microsoft.Authorization/roleAssignments/"+nameB {
		t.Fatalf("get: %v %+v", err, g)
	}
	gid, err := ra.GetByID(ctx, *g.ID, nil)
	if err != nil || *gid.Name != nameB {
		t.Fatalf("get by id: %v", err)
	}
	if _, err := ra.Get(ctx, sub, nameB, nil); func() bool { st, code := errCode(err); return st != 404 || code != "RoleAssignmentNotFound" }() {
		t.Fatalf("get at another scope: %v", err)
	}

	// Lists (pages of two): the bootstrap assignment's name (be127…) sorts
	// after aaaa…; names end in 1, 2, 3 and 0.
	list := func(pager interface {
		More() bool
	}, next func() ([]*sdk.RoleAssignment, error)) string {
		t.Helper()
		var all []*sdk.RoleAssignment
		for pager.More() {
			v, err := next()
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, v...)
		}
		return names(all, raName)
	}
	forScope := func(scope, filter string) string {
		var o *sdk.RoleAssignmentsClientListForScopeOptions
		if filter != "" {
			o = &sdk.RoleAssignmentsClientListForScopeOptions{Filter: to.Ptr(filter)}
		}
		pg := ra.NewListForScopePager(scope, o)
		return list(pg, func() ([]*sdk.RoleAssignment, error) { r, err := pg.NextPage(ctx); return r.Value, err })
	}
	subPager := ra.NewListForSubscriptionPager(nil)
	if got := list(subPager, func() ([]*sdk.RoleAssignment, error) { r, err := subPager.NextPage(ctx); return r.Value, err }); got != "1230" {
		t.Errorf("subscription list: %s", got)
	}
	rgPager := ra.NewListForResourceGroupPager("rg", &sdk.RoleAssignmentsClientListForResourceGroupOptions{Filter: to.Ptr("atScope()")})
	if got := list(rgPager, func() ([]*sdk.RoleAssignment, error) { r, err := rgPager.NextPage(ctx); return r.Value, err }); got != "130" {
		t.Errorf("resource group list atScope(): %s", got)
	}
	resPager := ra.NewListForResourcePager("rg", "Microsoft.ContainerRegistry", "registries", "reg1", nil)
	if got := list(resPager, func() ([]*sdk.RoleAssignment, error) { r, err := resPager.NextPage(ctx); return r.Value, err }); got != "1230" {
		t.Errorf("resource list: %s", got)
	}
	for filter, want := range map[string]string{
		"":                               "1230",
		"atScope()":                      "30",
		"principalId+eq+'" + alice + "'": "12",
		"assignedTo('" + bob + "')":      "3",
		"atScope()+and+assignedTo('" + bob + "')": "3",
		"principalId%20eq%20'" + ghost + "'":      "",
	} {
		if got := forScope("subscriptions/"+subID, filter); got != want {
			t.Errorf("list at subscription, $filter=%s: %q, want %q", filter, got, want)
		}
	}
	if got := forScope(reg, "atScope()"); got != "1230" {
		t.Errorf("list at the registry: %s", got)
	}
	pg := ra.NewListForScopePager("subscriptions/"+subID, &sdk.RoleAssignmentsClientListForScopeOptions{Filter: to.Ptr("name+eq+'x'")})
	if _, err := pg.NextPage(ctx); func() bool { st, _ := errCode(err); return st != 400 }() {
		t.Errorf("unsupported filter: %v", err)
	}

	// Delete: 200 with the assignment, then 204 for the absent one.
	d, err := ra.Delete(ctx, reg, nameB, nil)
	if err != nil || d.Name == nil || *d.Name != nameB {
		t.Fatalf("delete: %v %+v", err, d)
	}
	d, err = ra.Delete(ctx, reg, nameB, nil)
	if err != nil || d.ID != nil {
		t.Fatalf("delete absent: %v %+v", err, d)
	}
	if _, err := ra.DeleteByID(ctx, sub+"/providers/Microsoft.Authorization/roleAssignments/"+nameC, nil); err != nil {
		t.Fatal(err)
	}
	if e.roles.Allowed(ctx, bob, "Microsoft.ContainerInstance/containerGroups/write", sub) {
		t.Fatal("deleted by id, still allowed")
	}
}

// TestRoleDefinitionsWithSDK: the built-in roles at any scope, looked up
// by name as az and the Python SDK do.
func TestRoleDefinitionsWithSDK(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	_, rd := e.clients(t, owner)
	pg := rd.NewListPager("subscriptions/"+subID+"/resourceGroups/rg", &sdk.RoleDefinitionsClientListOptions{Filter: to.Ptr("roleName eq 'acrpull'")})
	r, err := pg.NextPage(ctx)
	if err != nil || len(r.Value) != 1 {
		t.Fatalf("by name: %v %+v", err, r.Value)
	}
	d := r.Value[0]
	if *d.Name != rbac.AcrPull || *d.ID != roleID(rbac.AcrPull) || *d.Properties.RoleName != "AcrPull" || *d.Properties.RoleType != "BuiltInRole" ||
		*d.Properties.Permissions[0].Actions[0] != "Microsoft.ContainerRegistry/registries/pull/read" || *d.Properties.AssignableScopes[0] != "/" {
		t.Fatalf("AcrPull: %+v %+v", d, d.Properties)
	}
	all := 0
	for pg := rd.NewListPager("", nil); pg.More(); {
		r, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all += len(r.Value)
	}
	if all != 9 {
		t.Fatalf("tenant list: %d roles", all)
	}
	g, err := rd.Get(ctx, "subscriptions/"+subID, rbac.Contributor, nil)
	if err != nil || *g.Properties.RoleName != "Contributor" || len(g.Properties.Permissions[0].NotActions) == 0 {
		t.Fatalf("get: %v %+v", err, g)
	}
	if g, err := rd.GetByID(ctx, roleID(rbac.Owner), nil); err != nil || *g.Properties.RoleName != "Owner" {
		t.Fatalf("get by id: %v", err)
	}
	if _, err := rd.Get(ctx, "subscriptions/"+subID, "aaaaaaaa-1111-4000-8000-000000000009", nil); func() bool { st, code := errCode(err); return st != 404 || code != "RoleDefinitionDoesNotExist" }() {
		t.Fatalf("unknown role: %v", err)
	}
}

// TestWhoMayAssign: Owner may, Contributor and Reader may not (403
// AuthorizationFailed with ARM's message); a principal without any role
// may not even read; a Reader of one resource group sees what applies there.
func TestWhoMayAssign(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	ra, _ := e.clients(t, owner)
	if _, err := ra.Create(ctx, sub, nameA, create(rbac.Contributor, alice), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ra.Create(ctx, sub+"/resourceGroups/rg", nameB, create(rbac.Reader, bob), nil); err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{alice, bob} {
		c, _ := e.clients(t, who)
		_, err := c.Create(ctx, sub+"/resourceGroups/rg", nameC, create(rbac.Owner, who), nil)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 403 || re.ErrorCode != "AuthorizationFailed" {
			t.Fatalf("%s assigns: %v", who, err)
		}
		want := "The client '" + who + "' with object id '" + who + "' does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/write' over scope '" +
			sub + "/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments/" + nameC + "' or the scope is invalid."
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("message: %v", err)
		}
		if _, err := c.Delete(ctx, sub, nameA, nil); func() bool { st, _ := errCode(err); return st != 403 }() {
			t.Fatalf("%s deletes: %v", who, err)
		}
	}
	// Bob (Reader of rg) lists at rg: everything that applies there.
	c, _ := e.clients(t, bob)
	pg := c.NewListForResourceGroupPager("rg", nil)
	r, err := pg.NextPage(ctx)
	if err != nil || names(r.Value, raName) != "120" {
		t.Fatalf("bob lists rg: %v %s", err, names(r.Value, raName))
	}
	// A principal with no role: 403 on reads too.
	c, _ = e.clients(t, ghost)
	if _, err := c.Get(ctx, sub, nameA, nil); func() bool { st, code := errCode(err); return st != 403 || code != "AuthorizationFailed" }() {
		t.Fatalf("no role reads: %v", err)
	}
}
