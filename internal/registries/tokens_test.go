package registries

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/store"
)

func ptr[T any](v T) *T { return &v }

func codeOf(err error) string {
	if e := apierr.As(err); e != nil {
		return e.Code
	}
	return ""
}

// tokenEnv is a registry "tokreg01" with a user scope map "appread"
// (repositories/app/content/read) and a token "apptoken" on it.
func tokenEnv(t *testing.T) (*env, *Registry, *clock.Fake) {
	t.Helper()
	e := newEnv(t)
	ctx := context.Background()
	r, _, err := e.svc.CreateOrUpdate(ctx, reg("tokreg01"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, created, err := e.svc.PutScopeMap(ctx, "sub", "rg", "tokreg01", "appread",
		ScopeMapUpdate{Description: ptr("app pull"), Actions: &[]string{"repositories/app/content/read"}}); err != nil || !created {
		t.Fatalf("put scope map: %v %v", err, created)
	}
	if _, tok, created, err := e.svc.PutToken(ctx, "sub", "rg", "tokreg01", "apptoken",
		TokenUpdate{ScopeMapID: ptr(ScopeMapID(r, "appread"))}); err != nil || !created || tok.Status != TokenEnabled {
		t.Fatalf("put token: %v %v %+v", err, created, tok)
	}
	return e, r, e.svc.Clock.(*clock.Fake)
}

func TestScopeMaps(t *testing.T) {
	e, r, _ := tokenEnv(t)
	ctx := context.Background()
	maps, err := e.svc.ListScopeMaps(ctx, "sub", "rg", "tokreg01")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range maps {
		names = append(names, m.Name+"/"+m.Type())
	}
	want := []string{"_repositories_admin/SystemDefined", "_repositories_pull/SystemDefined", "_repositories_pull_metadata_read/SystemDefined",
		"_repositories_push/SystemDefined", "_repositories_push_metadata_write/SystemDefined", "appread/UserDefined"}
	if !slices.Equal(names, want) {
		t.Fatalf("scope maps %v, want %v", names, want)
	}
	if _, m, err := e.svc.GetScopeMap(ctx, "sub", "rg", "tokreg01", "_REPOSITORIES_PULL"); err != nil || !m.System ||
		!slices.Equal(m.Actions, []string{"repositories/*/content/read"}) || !m.CreationDate.Equal(r.CreationDate) {
		t.Fatalf("system scope map: %v %+v", err, m)
	}
	// System maps are read-only.
	if _, _, _, err := e.svc.PutScopeMap(ctx, "sub", "rg", "tokreg01", "_repositories_pull", ScopeMapUpdate{Actions: &[]string{"repositories/a/content/read"}}); codeOf(err) != "SystemDefinedScopeMapReadOnly" {
		t.Fatalf("put system map: %v", err)
	}
	if err := e.svc.DeleteScopeMap(ctx, "sub", "rg", "tokreg01", "_repositories_admin"); codeOf(err) != "SystemDefinedScopeMapReadOnly" {
		t.Fatalf("delete system map: %v", err)
	}
	// Validation.
	for _, bad := range [][]string{
		{}, {"repositories/app/content/execute"}, {"repositories/App/content/read"}, {"repositories//content/read"},
		{"repositories/sample/*/teamA/content/read"}, {"repositories/sample/teamA*/content/read"}, {"repositories/a/*/b/*/content/read"},
		{"registry/app/content/read"}, {"repositories/app/contentWrite"}, {"gateway/conn/config/read"},
	} {
		if _, _, _, err := e.svc.PutScopeMap(ctx, "sub", "rg", "tokreg01", "badmap1", ScopeMapUpdate{Actions: &bad}); !apierr.Is(err, apierr.Invalid) {
			t.Errorf("actions %q accepted: %v", bad, err)
		}
	}
	if _, _, _, err := e.svc.PutScopeMap(ctx, "sub", "rg", "tokreg01", "bad", ScopeMapUpdate{Actions: &[]string{"repositories/a/content/read"}}); codeOf(err) != "InvalidResourceName" {
		t.Fatalf("short name: %v", err)
	}
	if _, _, err := e.svc.GetScopeMap(ctx, "sub", "rg", "tokreg01", "badmap1"); codeOf(err) != "ResourceNotFound" {
		t.Fatalf("invalid map was stored: %v", err)
	}
	// Wildcards, and rules grouped by repository.
	_, m, _, err := e.svc.PutScopeMap(ctx, "sub", "rg", "tokreg01", "wild-map", ScopeMapUpdate{Actions: &[]string{
		"repositories/*/content/read", "repositories/samples/*/content/write", "repositories/samples/*/metadata/read",
		"repositories/samples/*/content/write"}})
	if err != nil {
		t.Fatal(err)
	}
	rules := m.Rules()
	if len(m.Actions) != 3 || len(rules) != 2 || rules[0].Repository != "*" || rules[1].Repository != "samples/*" ||
		!slices.Equal(rules[1].Actions, []string{"push", "metadata_read"}) {
		t.Fatalf("wildcard map %+v rules %+v", m, rules)
	}
	// PATCH changes the description only; the revision changes.
	_, p, err := e.svc.PatchScopeMap(ctx, "sub", "rg", "tokreg01", "wild-map", ScopeMapUpdate{Description: ptr("d")})
	if err != nil || p.Description != "d" || len(p.Actions) != 3 || p.Rev == m.Rev {
		t.Fatalf("patch: %v %+v", err, p)
	}
	// A map in use cannot be deleted; an unused one can.
	if err := e.svc.DeleteScopeMap(ctx, "sub", "rg", "tokreg01", "appread"); codeOf(err) != "ScopeMapInUse" || !strings.Contains(err.Error(), "apptoken") {
		t.Fatalf("delete map in use: %v", err)
	}
	if err := e.svc.DeleteScopeMap(ctx, "sub", "rg", "tokreg01", "wild-map"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeleteScopeMap(ctx, "sub", "rg", "tokreg01", "wild-map"); codeOf(err) != "ResourceNotFound" {
		t.Fatalf("second delete: %v", err)
	}
	if n, tk, err := e.svc.CountChildren(ctx, r); err != nil || n != 1 || tk != 1 {
		t.Fatalf("count %d %d %v", n, tk, err)
	}
}

func TestTokensAndCredentials(t *testing.T) {
	e, r, clk := tokenEnv(t)
	ctx := context.Background()
	// The scope map must exist, in this registry.
	if _, _, _, err := e.svc.PutToken(ctx, "sub", "rg", "tokreg01", "token-two", TokenUpdate{ScopeMapID: ptr(ScopeMapID(r, "nosuchmap"))}); codeOf(err) != "ScopeMapNotFound" {
		t.Fatalf("missing scope map: %v", err)
	}
	other := strings.Replace(ScopeMapID(r, "appread"), "tokreg01", "otherreg1", 1)
	if _, _, _, err := e.svc.PutToken(ctx, "sub", "rg", "tokreg01", "token-two", TokenUpdate{ScopeMapID: &other}); codeOf(err) != "InvalidScopeMapId" {
		t.Fatalf("scope map of another registry: %v", err)
	}
	if _, _, _, err := e.svc.PutToken(ctx, "sub", "rg", "tokreg01", "token-two", TokenUpdate{ScopeMapID: ptr(ScopeMapID(r, "_repositories_push")), Status: ptr("paused")}); codeOf(err) != "InvalidTokenStatus" {
		t.Fatalf("bad status: %v", err)
	}
	// A token on a system map, created disabled.
	if _, tok, _, err := e.svc.PutToken(ctx, "sub", "rg", "tokreg01", "token-two", TokenUpdate{ScopeMapID: ptr(ScopeMapID(r, "_repositories_push")), Status: ptr("Disabled")}); err != nil || tok.Status != TokenDisabled || tok.ScopeMap != "_repositories_push" {
		t.Fatalf("token on system map: %v %+v", err, tok)
	}
	// No passwords until generateCredentials.
	if _, ok := e.svc.CheckToken("tokreg01", "apptoken", ""); ok {
		t.Fatal("empty password accepted")
	}
	if _, _, err := e.svc.GenerateCredentials(ctx, "sub", "rg", "tokreg01", TokenID(r, "apptoken"), "password3", nil); codeOf(err) != "InvalidPasswordName" {
		t.Fatalf("bad password name: %v", err)
	}
	if _, _, err := e.svc.GenerateCredentials(ctx, "sub", "rg", "tokreg01", TokenID(r, "nosuchtoken"), "", nil); codeOf(err) != "ResourceNotFound" {
		t.Fatalf("missing token: %v", err)
	}
	if _, _, err := e.svc.GenerateCredentials(ctx, "sub", "rg", "tokreg01", TokenID(r, "apptoken"), "", ptr(clk.Now().Add(-time.Hour))); codeOf(err) != "InvalidExpiry" {
		t.Fatalf("past expiry: %v", err)
	}
	expiry := clk.Now().Add(24 * time.Hour)
	tok, gen, err := e.svc.GenerateCredentials(ctx, "sub", "rg", "tokreg01", TokenID(r, "apptoken"), "", &expiry)
	if err != nil || len(gen) != 2 || gen[0].Name != "password1" || gen[1].Name != "password2" || len(gen[0].Value) != 32 || gen[0].Value == gen[1].Value ||
		len(tok.Passwords) != 2 || !tok.Passwords[0].Expiry.Equal(expiry) {
		t.Fatalf("generate: %v %+v %+v", err, tok, gen)
	}
	// Only hashes are stored.
	_ = e.svc.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableTokens, "", func(_ string, v []byte) bool {
			if strings.Contains(string(v), gen[0].Value) || strings.Contains(string(v), gen[1].Value) {
				t.Error("a password value is stored")
			}
			return true
		})
	})
	b, _ := json.Marshal(tok)
	if strings.Contains(string(b), gen[0].Value) {
		t.Fatal("the token carries a password value")
	}

	login, ok := e.svc.CheckToken("TOKREG01", "AppToken", gen[0].Value)
	if !ok || login.Name != "apptoken" || len(login.Rules) != 1 || login.Rules[0].Repository != "app" || !slices.Equal(login.Rules[0].Actions, []string{"pull"}) {
		t.Fatalf("login %+v %v", login, ok)
	}
	if _, ok := e.svc.CheckToken("tokreg01", "apptoken", gen[0].Value+"x"); ok {
		t.Fatal("wrong password accepted")
	}
	if _, ok := e.svc.CheckToken("tokreg01", "token-two", gen[0].Value); ok {
		t.Fatal("another token's password accepted")
	}
	current := func(l TokenLogin) bool { return e.svc.TokenCurrent("tokreg01", l.Name, l.Revision) }
	if !current(login) {
		t.Fatal("fresh login not current")
	}
	login2, _ := e.svc.CheckToken("tokreg01", "apptoken", gen[1].Value)

	// Regenerating password1 revokes logins with it, not with password2.
	_, regen, err := e.svc.GenerateCredentials(ctx, "sub", "rg", "tokreg01", TokenID(r, "apptoken"), "PASSWORD1", nil)
	if err != nil || len(regen) != 1 || regen[0].Name != "password1" || regen[0].Expiry != nil {
		t.Fatalf("regenerate: %v %+v", err, regen)
	}
	if current(login) || !current(login2) {
		t.Fatal("regenerating password1: wrong logins revoked")
	}
	if _, ok := e.svc.CheckToken("tokreg01", "apptoken", gen[0].Value); ok {
		t.Fatal("the old password1 still works")
	}
	login, _ = e.svc.CheckToken("tokreg01", "apptoken", regen[0].Value)

	// A change of the scope map revokes every login on it.
	if _, _, err := e.svc.PatchScopeMap(ctx, "sub", "rg", "tokreg01", "appread", ScopeMapUpdate{Actions: &[]string{"repositories/app/content/read", "repositories/app/metadata/read"}}); err != nil {
		t.Fatal(err)
	}
	if current(login) || current(login2) {
		t.Fatal("logins survived a scope map change")
	}
	login, _ = e.svc.CheckToken("tokreg01", "apptoken", regen[0].Value)
	if !slices.Equal(login.Rules[0].Actions, []string{"pull", "metadata_read"}) {
		t.Fatalf("new rules %+v", login.Rules)
	}
	// Disabling revokes; enabling lets the passwords log in again.
	if _, _, err := e.svc.PatchToken(ctx, "sub", "rg", "tokreg01", "apptoken", TokenUpdate{Status: ptr("disabled")}); err != nil {
		t.Fatal(err)
	}
	if current(login) {
		t.Fatal("login survived disabling")
	}
	if _, ok := e.svc.CheckToken("tokreg01", "apptoken", regen[0].Value); ok {
		t.Fatal("disabled token logs in")
	}
	if _, _, err := e.svc.PatchToken(ctx, "sub", "rg", "tokreg01", "apptoken", TokenUpdate{Status: ptr("enabled")}); err != nil {
		t.Fatal(err)
	}
	login, ok = e.svc.CheckToken("tokreg01", "apptoken", regen[0].Value)
	login2, _ = e.svc.CheckToken("tokreg01", "apptoken", gen[1].Value)
	if !ok || !current(login) {
		t.Fatal("re-enabled token")
	}
	// Switching scope maps revokes.
	if _, tk, err := e.svc.PatchToken(ctx, "sub", "rg", "tokreg01", "apptoken", TokenUpdate{ScopeMapID: ptr(ScopeMapID(r, "_repositories_pull"))}); err != nil || tk.ScopeMap != "_repositories_pull" {
		t.Fatalf("switch map: %v", err)
	}
	if current(login) {
		t.Fatal("login survived a switch of scope map")
	}
	login, _ = e.svc.CheckToken("tokreg01", "apptoken", regen[0].Value)
	login2, _ = e.svc.CheckToken("tokreg01", "apptoken", gen[1].Value)
	if login.Rules[0].Repository != "*" {
		t.Fatalf("rules %+v", login.Rules)
	}
	// Removing password2 (credentials.passwords keeps password1 only).
	if _, tk, err := e.svc.PatchToken(ctx, "sub", "rg", "tokreg01", "apptoken", TokenUpdate{KeepPasswords: &[]string{"password1"}}); err != nil || len(tk.Passwords) != 1 {
		t.Fatalf("remove password2: %v %+v", err, tk)
	}
	if current(login2) || !current(login) {
		t.Fatal("removing password2: wrong logins revoked")
	}
	// password2 expires (generated with an expiry above, then removed);
	// give password1 an expiry and pass it.
	_, regen, _ = e.svc.GenerateCredentials(ctx, "sub", "rg", "tokreg01", TokenID(r, "apptoken"), "password1", ptr(clk.Now().Add(time.Hour)))
	login, _ = e.svc.CheckToken("tokreg01", "apptoken", regen[0].Value)
	if !current(login) {
		t.Fatal("login before expiry")
	}
	clk.Advance(time.Hour)
	if current(login) {
		t.Fatal("login survived its password's expiry")
	}
	if _, ok := e.svc.CheckToken("tokreg01", "apptoken", regen[0].Value); ok {
		t.Fatal("expired password logs in")
	}
	// Deleting the token revokes.
	_, regen, _ = e.svc.GenerateCredentials(ctx, "sub", "rg", "tokreg01", TokenID(r, "apptoken"), "", nil)
	login, _ = e.svc.CheckToken("tokreg01", "apptoken", regen[0].Value)
	if err := e.svc.DeleteToken(ctx, "sub", "rg", "tokreg01", "apptoken"); err != nil {
		t.Fatal(err)
	}
	if current(login) {
		t.Fatal("login survived deleting the token")
	}
	if err := e.svc.DeleteToken(ctx, "sub", "rg", "tokreg01", "apptoken"); codeOf(err) != "ResourceNotFound" {
		t.Fatalf("second delete: %v", err)
	}
	// The map is free now.
	if err := e.svc.DeleteScopeMap(ctx, "sub", "rg", "tokreg01", "appread"); err != nil {
		t.Fatal(err)
	}
}

// TestTokensSurviveRestartNotRegistry: tokens are served from the store
// after a restart, and die with their registry (a new registry of the same
// name has none).
func TestTokensSurviveRestartNotRegistry(t *testing.T) {
	e, r, _ := tokenEnv(t)
	ctx := context.Background()
	_, gen, err := e.svc.GenerateCredentials(ctx, "sub", "rg", "tokreg01", TokenID(r, "apptoken"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	again := &Service{Store: e.svc.Store, Clock: e.svc.Clock, Resources: e.res, Operations: e.ops, Host: &fakeHost{served: map[string]string{}},
		Importer: e.imp, LoginHost: "127.0.0.1", FirstPort: 6001}
	if err := again.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	login, ok := again.CheckToken("tokreg01", "apptoken", gen[0].Value)
	if !ok || !again.TokenCurrent("tokreg01", "apptoken", login.Revision) {
		t.Fatal("token lost in a restart")
	}
	if _, err := e.svc.Delete(ctx, "sub", "rg", "tokreg01"); err != nil {
		t.Fatal(err)
	}
	if e.svc.TokenCurrent("tokreg01", "apptoken", login.Revision) {
		t.Fatal("login survived its registry")
	}
	r2, _, err := e.svc.CreateOrUpdate(ctx, reg("tokreg01"))
	if err != nil {
		t.Fatal(err)
	}
	if _, toks, err := e.svc.ListTokens(ctx, "sub", "rg", "tokreg01"); err != nil || len(toks) != 0 {
		t.Fatalf("tokens of the new registry: %v %d", err, len(toks))
	}
	if maps, _ := e.svc.ListScopeMaps(ctx, "sub", "rg", "tokreg01"); len(maps) != 5 {
		t.Fatalf("scope maps of the new registry: %d", len(maps))
	}
	if _, ok := e.svc.CheckToken(r2.Name, "apptoken", gen[0].Value); ok {
		t.Fatal("old token logs in to the new registry")
	}
}
