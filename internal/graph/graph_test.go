package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/store/memory"
)

type env struct {
	ids *identity.Service
	ts  *httptest.Server
	tok string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ids, err := identity.New(identity.Config{Store: memory.New(), KeyDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(&Handler{IDs: ids})
	t.Cleanup(ts.Close)
	tok, err := ids.IssueToken(context.Background(), identity.DefaultClientID, identity.AudienceGraph, "127.0.0.1:7443")
	if err != nil {
		t.Fatal(err)
	}
	return &env{ids: ids, ts: ts, tok: tok}
}

func (e *env) call(t *testing.T, tok, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.ts.URL+path, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	c, _ := e["code"].(string)
	if _, ok := e["innerError"].(map[string]any); !ok && e != nil {
		return c + " (no innerError)"
	}
	return c
}

func values(out map[string]any) []map[string]any {
	var vs []map[string]any
	for _, v := range out["value"].([]any) {
		vs = append(vs, v.(map[string]any))
	}
	return vs
}

// TestCreateForRBACFlow replays the calls az ad sp create-for-rbac makes.
func TestCreateForRBACFlow(t *testing.T) {
	e := newEnv(t)
	name := "my-app's deployer"
	q := "'" + strings.ReplaceAll(name, "'", "''") + "'"
	st, out := e.call(t, e.tok, "GET", "/v1.0/servicePrincipals?$filter="+url.QueryEscape("displayName eq "+q), nil)
	if st != 200 || len(values(out)) != 0 {
		t.Fatalf("existing sps: %d %v", st, out)
	}
	st, out = e.call(t, e.tok, "GET", "/v1.0/applications?$filter="+url.QueryEscape("startswith(displayName,"+q+")"), nil)
	if st != 200 || len(values(out)) != 0 {
		t.Fatalf("existing apps: %d %v", st, out)
	}
	st, app := e.call(t, e.tok, "POST", "/v1.0/applications", map[string]any{"displayName": name})
	if st != 201 || app["displayName"] != name || app["appId"] == "" || app["id"] == "" || len(app["passwordCredentials"].([]any)) != 0 {
		t.Fatalf("create app: %d %v", st, app)
	}
	appID, appObj := app["appId"].(string), app["id"].(string)
	st, pw := e.call(t, e.tok, "POST", "/v1.0/applications/"+appObj+"/addPassword",
		map[string]any{"passwordCredential": map[string]any{"displayName": "rbac", "startDateTime": "2026-01-01T00:00:00Z", "endDateTime": "2099-01-01T00:00:00Z"}})
	secret, _ := pw["secretText"].(string)
	if st != 200 || len(secret) < 30 || pw["keyId"] == "" || pw["hint"] != secret[:3] || pw["endDateTime"] != "2099-01-01T00:00:00Z" {
		t.Fatalf("addPassword: %d %v", st, pw)
	}
	// No service principal yet: the secret gets no token.
	if _, err := e.ids.CheckClientSecret(context.Background(), appID, secret); err == nil {
		t.Fatal("an application without a service principal authenticated")
	}
	st, sp := e.call(t, e.tok, "POST", "/v1.0/servicePrincipals", map[string]any{"appId": appID, "accountEnabled": true})
	if st != 201 || sp["appId"] != appID || sp["servicePrincipalType"] != "Application" {
		t.Fatalf("create sp: %d %v", st, sp)
	}
	p, err := e.ids.CheckClientSecret(context.Background(), appID, secret)
	if err != nil || p.ObjectID != sp["id"] {
		t.Fatalf("secret after sp: %+v %v", p, err)
	}
	// Again: 409 with Graph's code.
	if st, out := e.call(t, e.tok, "POST", "/v1.0/servicePrincipals", map[string]any{"appId": appID}); st != 409 || errCode(out) != "Request_MultipleObjectsWithSameKeyValue" {
		t.Fatalf("second sp: %d %v", st, out)
	}
	// Reads never show the secret; filters as az sends them.
	st, out = e.call(t, e.tok, "GET", "/v1.0/applications?$filter="+url.QueryEscape("appId eq '"+appID+"'"), nil)
	if vs := values(out); st != 200 || len(vs) != 1 || vs[0]["id"] != appObj {
		t.Fatalf("apps by appId: %d %v", st, out)
	}
	b, _ := json.Marshal(out)
	if strings.Contains(string(b), secret) || !strings.Contains(string(b), `"secretText":null`) {
		t.Fatalf("application list shows the secret or no credential: %s", b)
	}
	st, out = e.call(t, e.tok, "GET", "/v1.0/servicePrincipals?$filter="+url.QueryEscape("servicePrincipalNames/any(c:c eq '"+appID+"')"), nil)
	if vs := values(out); st != 200 || len(vs) != 1 || vs[0]["id"] != sp["id"] {
		t.Fatalf("sps by name: %d %v", st, out)
	}
	if st, out := e.call(t, e.tok, "GET", "/v1.0/servicePrincipals?$filter="+url.QueryEscape("tags/any(t:t eq 'x')"), nil); st != 400 || errCode(out) != "Request_UnsupportedQuery" {
		t.Fatalf("unsupported filter: %d %v", st, out)
	}
	// Delete the service principal: its tokens stop working; the app stays.
	tok, err := e.ids.IssueToken(context.Background(), appID, identity.AudienceARM, "127.0.0.1:7443")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := e.call(t, e.tok, "DELETE", "/v1.0/servicePrincipals/"+sp["id"].(string), nil); st != 204 {
		t.Fatalf("delete sp: %d", st)
	}
	if _, err := e.ids.Verify(tok, identity.AudienceARM); err == nil {
		t.Fatal("token of a deleted service principal verifies")
	}
	if st, out := e.call(t, e.tok, "GET", "/v1.0/servicePrincipals/"+sp["id"].(string), nil); st != 404 || errCode(out) != "Request_ResourceNotFound" {
		t.Fatalf("get deleted sp: %d %v", st, out)
	}
	if st, _ := e.call(t, e.tok, "GET", "/v1.0/applications/"+appObj, nil); st != 200 {
		t.Fatalf("app after sp delete: %d", st)
	}
	// A new service principal gets a new object id; the old token stays dead.
	st, sp2 := e.call(t, e.tok, "POST", "/v1.0/servicePrincipals", map[string]any{"appId": appID})
	if st != 201 || sp2["id"] == sp["id"] {
		t.Fatalf("recreate sp: %d %v", st, sp2)
	}
	if _, err := e.ids.Verify(tok, identity.AudienceARM); err == nil {
		t.Fatal("an old token verifies for a recreated service principal")
	}
	if st, _ := e.call(t, e.tok, "DELETE", "/v1.0/applications/"+appObj, nil); st != 204 {
		t.Fatalf("delete app: %d", st)
	}
	if e.ids.Live(sp2["id"].(string)) {
		t.Fatal("service principal outlived its application")
	}
	if st, out := e.call(t, e.tok, "POST", "/v1.0/servicePrincipals", map[string]any{"appId": appID}); st != 400 || !strings.Contains(out["error"].(map[string]any)["message"].(string), "does not reference") {
		t.Fatalf("sp for a deleted app: %d %v", st, out)
	}
}

// TestAuth: Graph's 401 and 403 bodies.
func TestAuth(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	arm, _ := e.ids.IssueToken(ctx, identity.DefaultClientID, identity.AudienceARM, "127.0.0.1:7443")
	p, _, err := e.ids.CreateServicePrincipal(ctx, "not-admin")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := e.ids.IssueToken(ctx, p.ClientID, identity.AudienceGraph, "127.0.0.1:7443")
	for _, tc := range []struct {
		name, tok string
		status    int
		code      string
	}{
		{"none", "", 401, "InvalidAuthenticationToken"},
		{"garbage", "x.y.z", 401, "InvalidAuthenticationToken"},
		{"ARM audience", arm, 401, "InvalidAuthenticationToken"},
		{"not a manager", other, 403, "Authorization_RequestDenied"},
	} {
		st, out := e.call(t, tc.tok, "GET", "/v1.0/servicePrincipals", nil)
		if st != tc.status || errCode(out) != tc.code {
			t.Errorf("%s: %d %v", tc.name, st, out)
		}
	}
	if st, out := e.call(t, e.tok, "DELETE", "/v1.0/applications/"+identity.DefaultAppObjectID, nil); st != 403 || errCode(out) != "Authorization_RequestDenied" {
		t.Fatalf("deleting the default app: %d %v", st, out)
	}
	// Managed identities are listed, typed, and not deletable here.
	mi, err := e.ids.CreateManagedIdentity(ctx, "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u", "u")
	if err != nil {
		t.Fatal(err)
	}
	st, out := e.call(t, e.tok, "GET", "/v1.0/servicePrincipals/"+mi.ObjectID, nil)
	if st != 200 || out["servicePrincipalType"] != "ManagedIdentity" {
		t.Fatalf("managed identity sp: %d %v", st, out)
	}
	if st, _ := e.call(t, e.tok, "DELETE", "/v1.0/servicePrincipals/"+mi.ObjectID, nil); st != 400 || !e.ids.Live(mi.ObjectID) {
		t.Fatalf("deleting a managed identity via Graph: %d", st)
	}
}
