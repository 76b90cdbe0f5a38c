package managedidentity

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/msi/armmsi"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/msi"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store/memory"
)

const sub = "be127000-0000-4000-8000-000000000002"

// tokenAuth authenticates with berth's real token service.
type tokenAuth struct{ ids *identity.Service }

func (a tokenAuth) Authenticate(r *http.Request) (arm.Principal, error) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	c, err := a.ids.Verify(tok, identity.AudienceARM)
	if err != nil {
		return arm.Principal{}, apierr.New(apierr.Unauthenticated, "InvalidAuthenticationToken", "The access token is invalid.")
	}
	return arm.Principal{TenantID: c.TenantID, ObjectID: c.ObjectID, ClientID: c.AppID}, nil
}

// tokenCred gets tokens from the identity service for a principal.
type tokenCred struct {
	ids      *identity.Service
	clientID string
}

func (c tokenCred) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.ids.IssueToken(ctx, c.clientID, identity.AudienceARM, "127.0.0.1:7443")
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, err
}

// denyOne is an Authorizer that refuses reads of one identity.
type denyOne struct{ id string }

func (d denyOne) Allowed(_ context.Context, _ arm.Principal, action, scope string) bool {
	return !strings.EqualFold(scope, d.id)
}
func (d denyOne) AllowedBelow(context.Context, arm.Principal, string, string) bool { return true }

type env struct {
	client *armmsi.UserAssignedIdentitiesClient
	ids    *identity.Service
	svc    *msi.Service
	res    *resources.Service
	srv    *arm.Server
	api    *API
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := memory.New()
	clk := clock.Real{}
	ids, err := identity.New(identity.Config{Store: st, KeyDir: t.TempDir(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &resources.Service{Store: st, Clock: clk, Operations: ops}
	svc := &msi.Service{Store: st, Clock: clk, Resources: res, Principals: ids}
	ctx := context.Background()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	res.EnsureSubscription(ctx, resources.Subscription{ID: sub, TenantID: identity.DefaultTenantID})
	res.CreateOrUpdate(ctx, resources.ResourceGroup{Subscription: sub, Name: "rg", Location: "westeurope"})
	s := &arm.Server{Auth: tokenAuth{ids}, Resources: res, Operations: ops, Clock: clk, RetryAfter: 10 * time.Millisecond}
	s.HandleCore()
	api := &API{ARM: s, Service: svc}
	api.Register()
	ts := httptest.NewTLSServer(s)
	t.Cleanup(ts.Close)
	cfg := cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
		cloud.ResourceManager: {Audience: "https://management.core.windows.net/", Endpoint: ts.URL}}}
	c, err := armmsi.NewUserAssignedIdentitiesClient(sub, tokenCred{ids, identity.DefaultClientID},
		&azarm.ClientOptions{ClientOptions: policy.ClientOptions{Cloud: cfg, Transport: ts.Client()}})
	if err != nil {
		t.Fatal(err)
	}
	return &env{client: c, ids: ids, svc: svc, res: res, srv: s, api: api}
}

func respErr(err error) *azcore.ResponseError {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re
	}
	return nil
}

// TestSDKLifecycle drives armmsi v1.3.0 through create, get, update, lists
// and delete, and checks the identity is a real principal whose tokens stop
// working when it is deleted.
func TestSDKLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client
	created, err := c.CreateOrUpdate(ctx, "rg", "app-id_1", armmsi.Identity{Location: to.Ptr("westeurope"),
		Tags: map[string]*string{"env": to.Ptr("dev")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := created.Properties
	if p == nil || p.PrincipalID == nil || p.ClientID == nil || p.TenantID == nil || *p.TenantID != identity.DefaultTenantID {
		t.Fatalf("properties %+v", p)
	}
	if p.IsolationScope == nil || *p.IsolationScope != armmsi.IsolationScopeNone {
		t.Fatalf("isolationScope %v, want None", p.IsolationScope)
	}
	wantID := "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app-id_1"
	if *created.ID != wantID || *created.Type != "Microsoft.ManagedIdentity/userAssignedIdentities" || *created.Name != "app-id_1" {
		t.Fatalf("id %s type %s name %s", *created.ID, *created.Type, *created.Name)
	}
	// The principal exists in the token service, with the resource id.
	pr, err := e.ids.PrincipalByObjectID(ctx, *p.PrincipalID)
	if err != nil || pr.Kind != identity.KindManagedIdentity || !strings.EqualFold(pr.ResourceID, wantID) || pr.ClientID != *p.ClientID {
		t.Fatalf("principal %+v, %v", pr, err)
	}
	// A second PUT keeps the principal (200) and replaces tags.
	again, err := c.CreateOrUpdate(ctx, "rg", "APP-ID_1", armmsi.Identity{Location: to.Ptr("West Europe")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *again.Properties.PrincipalID != *p.PrincipalID || len(again.Tags) != 0 || *again.Name != "app-id_1" {
		t.Fatalf("second PUT: %+v", again.Identity)
	}
	upd, err := c.Update(ctx, "rg", "app-id_1", armmsi.IdentityUpdate{Tags: map[string]*string{"a": to.Ptr("b")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if upd.Tags["a"] == nil || *upd.Tags["a"] != "b" || *upd.Properties.ClientID != *p.ClientID {
		t.Fatalf("update: %+v", upd.Identity)
	}
	got, err := c.Get(ctx, "rg", "app-id_1", nil)
	if err != nil || *got.Tags["a"] != "b" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := c.CreateOrUpdate(ctx, "rg", "second", armmsi.Identity{Location: to.Ptr("westeurope"),
		Properties: &armmsi.UserAssignedIdentityProperties{IsolationScope: to.Ptr(armmsi.IsolationScopeRegional)}}, nil); err != nil {
		t.Fatal(err)
	}
	var names []string
	for pg := c.NewListByResourceGroupPager("rg", nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range page.Value {
			names = append(names, *i.Name)
			if *i.Name == "second" && *i.Properties.IsolationScope != armmsi.IsolationScopeRegional {
				t.Errorf("second: isolationScope %s", *i.Properties.IsolationScope)
			}
		}
	}
	if fmt.Sprint(names) != "[app-id_1 second]" {
		t.Fatalf("list by group: %v", names)
	}
	// A token of the identity works until the identity is deleted.
	tok, _, err := e.ids.IssueFor(ctx, *p.ClientID, identity.AudienceARM, "https://127.0.0.1:7443")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ids.Verify(tok, identity.AudienceARM); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, "rg", "app-id_1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ids.Verify(tok, identity.AudienceARM); !errors.Is(err, identity.ErrRevoked) {
		t.Fatalf("token of a deleted identity: %v, want ErrRevoked", err)
	}
	_, err = c.Get(ctx, "rg", "app-id_1", nil)
	if re := respErr(err); re == nil || re.StatusCode != 404 || re.ErrorCode != "ResourceNotFound" {
		t.Fatalf("get after delete: %v", err)
	}
	// DELETE of nothing: 204, which the SDK takes as success.
	if _, err := c.Delete(ctx, "rg", "app-id_1", nil); err != nil {
		t.Fatal(err)
	}
	var subNames []string
	for pg := c.NewListBySubscriptionPager(nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range page.Value {
			subNames = append(subNames, *i.Name)
		}
	}
	if fmt.Sprint(subNames) != "[second]" {
		t.Fatalf("list by subscription: %v", subNames)
	}
}

func TestSDKErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client
	cases := []struct {
		rg, name string
		body     armmsi.Identity
		status   int
		code     string
	}{
		{"rg", "ab", armmsi.Identity{Location: to.Ptr("westeurope")}, 400, "InvalidResourceName"},
		{"rg", "-abc", armmsi.Identity{Location: to.Ptr("westeurope")}, 400, "InvalidResourceName"},
		{"rg", "a.bc", armmsi.Identity{Location: to.Ptr("westeurope")}, 400, "InvalidResourceName"},
		{"rg", strings.Repeat("a", 129), armmsi.Identity{Location: to.Ptr("westeurope")}, 400, "InvalidResourceName"},
		{"rg", "good", armmsi.Identity{}, 400, "LocationRequired"},
		{"nope", "good", armmsi.Identity{Location: to.Ptr("westeurope")}, 404, "ResourceGroupNotFound"},
	}
	for _, tc := range cases {
		_, err := c.CreateOrUpdate(ctx, tc.rg, tc.name, tc.body, nil)
		if re := respErr(err); re == nil || re.StatusCode != tc.status || re.ErrorCode != tc.code {
			t.Errorf("PUT %s/%s: %v, want %d %s", tc.rg, tc.name, err, tc.status, tc.code)
		}
	}
	if _, err := c.CreateOrUpdate(ctx, "rg", strings.Repeat("a", 128), armmsi.Identity{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Errorf("128 characters: %v", err)
	}
	// Nothing half-created: no principal was left by the refused PUTs.
	ps, _ := e.ids.ListPrincipals(ctx)
	n := 0
	for _, p := range ps {
		if p.Kind == identity.KindManagedIdentity {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d managed-identity principals, want 1", n)
	}
	if _, err := c.CreateOrUpdate(ctx, "rg", "moved", armmsi.Identity{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateOrUpdate(ctx, "rg", "moved", armmsi.Identity{Location: to.Ptr("eastus")}, nil)
	if re := respErr(err); re == nil || re.ErrorCode != "InvalidResourceLocation" {
		t.Fatalf("location change: %v", err)
	}
	_, err = c.Get(ctx, "nope", "x", nil)
	if re := respErr(err); re == nil || re.ErrorCode != "ResourceGroupNotFound" {
		t.Fatalf("get in missing group: %v", err)
	}
}

// TestVersions: every listed api-version answers, isolationScope only where
// the version has it, and unknown versions get ARM's error.
func TestVersions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.client.CreateOrUpdate(ctx, "rg", "v-check", armmsi.Identity{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(e.srv)
	defer ts.Close()
	tok, _ := e.ids.IssueToken(ctx, identity.DefaultClientID, identity.AudienceARM, "127.0.0.1:7443")
	get := func(v string) (int, string) {
		req, _ := http.NewRequest("GET", ts.URL+"/subscriptions/"+sub+"/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/v-check?api-version="+v, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	for _, v := range Versions.List {
		st, body := get(v)
		if st != 200 {
			t.Fatalf("%s: %d %s", v, st, body)
		}
		if has := strings.Contains(body, `"isolationScope"`); has != (v >= "2024-11-30") {
			t.Errorf("%s: isolationScope present %v: %s", v, has, body)
		}
	}
	st, body := get("2099-01-01")
	if st != 400 || !strings.Contains(body, "NoRegisteredProviderFound") {
		t.Fatalf("unknown version: %d %s", st, body)
	}
}

// TestListFilteredAndPaged: lists keep only what the caller may read and
// page with nextLink.
func TestListFilteredAndPaged(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := e.client.CreateOrUpdate(ctx, "rg", fmt.Sprintf("id-%d", i), armmsi.Identity{Location: to.Ptr("westeurope")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	e.api.PageSize = 2
	e.srv.Authz = denyOne{id: msi.ResourceID(sub, "rg", "id-3")}
	var names []string
	pages := 0
	for pg := e.client.NewListBySubscriptionPager(nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, i := range page.Value {
			names = append(names, *i.Name)
		}
	}
	if fmt.Sprint(names) != "[id-0 id-1 id-2 id-4]" || pages != 2 {
		t.Fatalf("names %v in %d pages", names, pages)
	}
}

// TestDeletedWithResourceGroup: deleting the group deletes its identities
// and their principals.
func TestDeletedWithResourceGroup(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	out, err := e.client.CreateOrUpdate(ctx, "rg", "gone-with-rg", armmsi.Identity{Location: to.Ptr("westeurope")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	op, err := e.res.BeginDelete(ctx, sub, "rg")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		o, err := e.srv.Operations.Get(ctx, op.ID)
		if err != nil {
			t.Fatal(err)
		}
		if o.Status != operation.InProgress {
			if o.Status != operation.Succeeded {
				t.Fatalf("delete: %+v", o)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("resource group delete did not finish")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e.ids.Live(*out.Properties.PrincipalID) {
		t.Fatal("the identity's principal outlived its resource group")
	}
	if _, err := e.svc.Get(ctx, *out.ID); !errors.Is(err, msi.ErrNotFound) {
		t.Fatalf("Get after group delete: %v", err)
	}
}
