package server

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/blob/memory"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/fileutil"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/rbac"
	"github.com/berth-dev/berth/internal/registry"
	"github.com/berth-dev/berth/internal/resources"
	storemem "github.com/berth-dev/berth/internal/store/memory"
)

const issuerHost = "127.0.0.1:7443"

type tokenEnv struct {
	ids    *identity.Service
	roles  *rbac.Service
	clk    *clock.Fake
	keyDir string
	arm    *httptest.Server
	reg    *httptest.Server
	login  string
}

func newTokenEnv(t *testing.T) *tokenEnv {
	t.Helper()
	st := storemem.New()
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	keyDir := t.TempDir()
	ids, err := identity.New(identity.Config{Store: st, KeyDir: keyDir, Clock: clk, IssuerHosts: aliases(issuerHost)})
	if err != nil {
		t.Fatal(err)
	}
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &resources.Service{Store: st, Clock: clk, Operations: ops}
	ctx := context.Background()
	if err := res.EnsureSubscription(ctx, resources.Subscription{ID: DefaultSubscriptionID, TenantID: identity.DefaultTenantID, State: "Enabled"}); err != nil {
		t.Fatal(err)
	}
	roles := &rbac.Service{Store: st, Clock: clk, Principals: principals{ids}, DefaultPrincipal: identity.DefaultObjectID, DefaultScope: subPath}
	if err := roles.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s := &arm.Server{Auth: armAuth{ids}, Resources: res, Operations: ops, Clock: clk}
	s.HandleCore()
	armTS := httptest.NewServer(s)
	t.Cleanup(armTS.Close)

	regKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// The registry's login server is the test server's address, known
	// once it listens: a handler that forwards to the registry built then.
	var h http.Handler
	regTS := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(regTS.Close)
	login := strings.TrimPrefix(regTS.URL, "http://")
	reg, err := registry.New(registry.Config{Name: "berth", LoginServer: login, Blobs: memory.New(), Store: st,
		Auth: registryAuth{ids: ids, roles: roles, registry: "berth", defaultScope: subPath}, SigningKey: regKey, KeyID: "k1", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	h = reg.Handler()
	return &tokenEnv{ids: ids, roles: roles, clk: clk, keyDir: keyDir, arm: armTS, reg: regTS, login: login}
}

// token issues an ARM token for the default principal.
func (e *tokenEnv) token(t *testing.T, clientID, aud string) string {
	t.Helper()
	tok, err := e.ids.IssueToken(context.Background(), clientID, aud, issuerHost)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// resign changes a token's claims and signs it again with key (berth's own
// key, or another for a forgery), keeping its kid.
func resign(t *testing.T, tok string, key *rsa.PrivateKey, change func(c map[string]any)) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	change(c)
	b, _ = json.Marshal(c)
	signed := parts[0] + "." + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func (e *tokenEnv) berthKey(t *testing.T) *rsa.PrivateKey {
	k, err := fileutil.LoadOrCreateRSAKey(filepath.Join(e.keyDir, "token-signing-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// armGet lists resource groups with an Authorization header.
func (e *tokenEnv) armGet(t *testing.T, authz string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.arm.URL+"/subscriptions/"+DefaultSubscriptionID+"/resourcegroups?api-version=2021-04-01", nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// exchange trades an Entra token for a registry refresh token.
func (e *tokenEnv) exchange(t *testing.T, tok string) (int, http.Header, string) {
	t.Helper()
	form := url.Values{"grant_type": {"access_token"}, "service": {e.login}, "access_token": {tok}}
	resp, err := http.PostForm(e.reg.URL+"/oauth2/exchange", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestTokenMatrix: every kind of bad token against ARM and the registry's
// exchange: 401 with the service's code, body and challenge.
func TestTokenMatrix(t *testing.T) {
	e := newTokenEnv(t)
	ctx := context.Background()
	good := e.token(t, identity.DefaultClientID, identity.AudienceARM)
	key := e.berthKey(t)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	const otherTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

	// Expired: issued two hours ago. Not yet valid: issued ten minutes
	// from now (beyond the five minutes of skew).
	e.clk.Advance(-2 * time.Hour)
	expired := e.token(t, identity.DefaultClientID, identity.AudienceARM)
	e.clk.Advance(2*time.Hour + 10*time.Minute)
	future := e.token(t, identity.DefaultClientID, identity.AudienceARM)
	e.clk.Advance(-10 * time.Minute)

	// A principal deleted after its token was issued.
	sp, _, err := e.ids.CreateServicePrincipal(ctx, "doomed")
	if err != nil {
		t.Fatal(err)
	}
	doomed := e.token(t, sp.ClientID, identity.AudienceARM)
	if st, _, body := e.armGet(t, "Bearer "+doomed); st != 200 {
		t.Fatalf("token before delete: %d %s", st, body)
	}
	if err := e.ids.DeletePrincipal(ctx, sp.ObjectID); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, authz, code, msg string
	}{
		{"no header", "", "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."},
		{"basic scheme", "Basic dXNlcjpwYXNz", "AuthenticationFailed", "Authentication failed. The 'Authorization' header is provided in an invalid format."},
		{"bearer alone", "Bearer", "AuthenticationFailed", "Authentication failed. The 'Authorization' header is provided in an invalid format."},
		{"not a JWT", "Bearer not-a-jwt", "InvalidAuthenticationToken", "The access token is invalid."},
		{"expired", "Bearer " + expired, "ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time."},
		{"not yet valid", "Bearer " + future, "InvalidAuthenticationToken", "The access token is invalid."},
		{"wrong audience", "Bearer " + e.token(t, identity.DefaultClientID, identity.AudienceContainer), "InvalidAuthenticationTokenAudience",
			"The access token has been obtained for wrong audience or resource. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.azure.com/'."},
		{"graph audience", "Bearer " + e.token(t, identity.DefaultClientID, identity.AudienceGraph), "InvalidAuthenticationTokenAudience", ""},
		{"other tenant", "Bearer " + resign(t, good, key, func(c map[string]any) {
			c["tid"] = otherTenant
			c["iss"] = "https://" + issuerHost + "/" + otherTenant + "/"
		}), "InvalidAuthenticationTokenTenant", ""},
		{"forged signature", "Bearer " + resign(t, good, otherKey, func(map[string]any) {}), "InvalidAuthenticationToken", "The access token is invalid."},
		{"forged claims", "Bearer " + resign(t, good, otherKey, func(c map[string]any) { c["oid"] = "00000000-0000-0000-0000-000000000001" }), "InvalidAuthenticationToken", "The access token is invalid."},
		{"foreign issuer", "Bearer " + resign(t, good, key, func(c map[string]any) {
			c["iss"] = "https://sts.windows.net/" + identity.DefaultTenantID + "/"
		}), "InvalidAuthenticationToken", "The access token is invalid."},
		{"deleted principal", "Bearer " + doomed, "InvalidAuthenticationToken", "The access token is invalid."},
	}
	for _, tc := range cases {
		st, h, body := e.armGet(t, tc.authz)
		var env struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		json.Unmarshal([]byte(body), &env)
		if st != 401 || env.Error.Code != tc.code || h.Get("x-ms-error-code") != tc.code {
			t.Errorf("ARM %s: %d %s %s, want 401 %s", tc.name, st, h.Get("x-ms-error-code"), body, tc.code)
			continue
		}
		if tc.msg != "" && env.Error.Message != tc.msg {
			t.Errorf("ARM %s: message %q, want %q", tc.name, env.Error.Message, tc.msg)
		}
		wa := h.Get("WWW-Authenticate")
		if !strings.HasPrefix(wa, `Bearer authorization_uri="`) || !strings.Contains(wa, `error="invalid_token"`) ||
			!strings.Contains(wa, `error_description="`+env.Error.Message+`"`) {
			t.Errorf("ARM %s: WWW-Authenticate %q", tc.name, wa)
		}
		if tc.code == "InvalidAuthenticationTokenTenant" && !strings.Contains(env.Error.Message, identity.DefaultTenantID) {
			t.Errorf("ARM %s: message names no tenant: %s", tc.name, env.Error.Message)
		}
	}
	if st, _, body := e.armGet(t, "Bearer "+good); st != 200 {
		t.Fatalf("good token: %d %s", st, body)
	}

	// The registry's exchange takes ARM and registry audiences only, from
	// live principals of berth's tenant.
	if st, _, body := e.exchange(t, e.token(t, identity.DefaultClientID, identity.AudienceContainer)); st != 200 {
		t.Fatalf("exchange with a good token: %d %s", st, body)
	}
	for _, tc := range cases {
		tok, ok := strings.CutPrefix(tc.authz, "Bearer ")
		if !ok || tok == "" || tc.name == "wrong audience" {
			continue
		}
		st, _, body := e.exchange(t, tok)
		if st != 401 || !strings.Contains(body, `"code":"UNAUTHORIZED"`) {
			t.Errorf("exchange %s: %d %s", tc.name, st, body)
		}
	}
}

// TestDeletedPrincipalRegistryToken: a registry refresh and access token
// obtained by a service principal stop working when it is deleted.
func TestDeletedPrincipalRegistryToken(t *testing.T) {
	e := newTokenEnv(t)
	ctx := context.Background()
	sp, secret, err := e.ids.CreateServicePrincipal(ctx, "pusher")
	if err != nil {
		t.Fatal(err)
	}
	// Registry access comes from a role (RBAC).
	if _, _, err := e.roles.Create(ctx, rbac.Assignment{Name: newGUID(), Scope: subPath, RoleDefinitionID: rbac.AcrPush, PrincipalID: sp.ObjectID}, ""); err != nil {
		t.Fatal(err)
	}
	// Basic login with the secret for an access token (ACR's SP login).
	getToken := func() (int, string) {
		req, _ := http.NewRequest("GET", e.reg.URL+"/oauth2/token?service="+e.login+"&scope=repository:app:pull", nil)
		req.SetBasicAuth(sp.ClientID, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out.AccessToken
	}
	st, access := getToken()
	if st != 200 || access == "" {
		t.Fatalf("registry token: %d", st)
	}
	// And a refresh token from the exchange with an ARM token.
	st, _, body := e.exchange(t, e.token(t, sp.ClientID, identity.AudienceARM))
	if st != 200 {
		t.Fatalf("exchange: %d %s", st, body)
	}
	var ex struct {
		RefreshToken string `json:"refresh_token"`
	}
	json.Unmarshal([]byte(body), &ex)
	challenge := ""
	use := func(tok string) int {
		req, _ := http.NewRequest("GET", e.reg.URL+"/v2/app/tags/list", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		challenge = resp.Header.Get("WWW-Authenticate")
		return resp.StatusCode
	}
	if st := use(access); st == 401 {
		t.Fatalf("access token before delete: %d", st)
	}
	refresh := func() int {
		form := url.Values{"grant_type": {"refresh_token"}, "service": {e.login}, "scope": {"repository:app:pull"}, "refresh_token": {ex.RefreshToken}}
		resp, err := http.PostForm(e.reg.URL+"/oauth2/token", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := refresh(); st != 200 {
		t.Fatalf("refresh before delete: %d", st)
	}
	armTok := e.token(t, sp.ClientID, identity.AudienceARM)
	if err := e.ids.DeletePrincipal(ctx, sp.ObjectID); err != nil {
		t.Fatal(err)
	}
	if st := use(access); st != 401 {
		t.Errorf("access token after delete: %d, want 401", st)
	}
	if want := `Bearer realm="https://` + e.login + `/oauth2/token",service="` + e.login + `"`; !strings.HasPrefix(challenge, want) || !strings.Contains(challenge, `error="invalid_token"`) {
		t.Errorf("registry challenge after delete: %q", challenge)
	}
	if st := refresh(); st != 401 {
		t.Errorf("refresh token after delete: %d, want 401", st)
	}
	if st, _ := getToken(); st != 401 {
		t.Errorf("Basic login after delete: %d, want 401", st)
	}
	if st, _, _ := e.armGet(t, "Bearer "+armTok); st != 401 {
		t.Errorf("ARM token after delete: %d, want 401", st)
	}
}
