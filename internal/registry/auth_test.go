package registry

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestChallenge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	realm := fmt.Sprintf(`Bearer realm="https://%s/oauth2/token",service="%s"`, e.host, e.host)
	tests := []struct {
		method, path string
		body         []byte
		want         string
	}{
		{"GET", "/v2/", nil, realm},
		{"GET", "/v2/a/b/c/manifests/latest", nil, realm + `,scope="repository:a/b/c:pull"`},
		{"HEAD", "/v2/app/blobs/sha256:" + strings.Repeat("0", 64), nil, realm + `,scope="repository:app:pull"`},
		{"POST", "/v2/app/blobs/uploads/", nil, realm + `,scope="repository:app:push,pull"`},
		// The body is not looked at before authentication (the Azure SDK's
		// challenge request has none).
		{"PUT", "/v2/app/manifests/v1", []byte("not json"), realm + `,scope="repository:app:push,pull"`},
		{"PATCH", "/v2/app/blobs/uploads/nope", []byte("x"), realm + `,scope="repository:app:push,pull"`},
		{"GET", "/v2/app/tags/list", nil, realm + `,scope="repository:app:pull"`},
	}
	for _, tc := range tests {
		r := e.do(request{method: tc.method, path: tc.path, body: tc.body})
		code := "UNAUTHORIZED"
		if tc.method == "HEAD" {
			code = ""
		}
		r.want(t, 401, code)
		if got := r.Header.Get("WWW-Authenticate"); got != tc.want {
			t.Errorf("%s %s: WWW-Authenticate\n got %s\nwant %s", tc.method, tc.path, got, tc.want)
		}
		if got := r.Header.Get("Docker-Distribution-Api-Version"); got != "registry/2.0" {
			t.Errorf("%s %s: Docker-Distribution-Api-Version = %q", tc.method, tc.path, got)
		}
	}
}

// challengeParams parses a challenge the way the Azure Go SDK does: strip
// "Bearer ", split on `",`, then on '='.
func challengeParams(t *testing.T, c string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, kv := range strings.Split(strings.TrimPrefix(c, "Bearer "), `",`) {
		parts := strings.Split(kv, "=")
		if len(parts) != 2 {
			t.Fatalf("challenge %q: part %q does not split in two on '='", c, kv)
		}
		out[parts[0]] = strings.Trim(parts[1], `"`)
	}
	return out
}

func TestBasicAuthOnV2(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(request{method: "GET", path: "/v2/", auth: "basic"}).want(t, 200, "")
	if string(r.body) != "{}" {
		t.Errorf("body %q", r.body)
	}
	e.do(request{method: "GET", path: "/v2/", auth: "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":wrong"))}).
		want(t, 401, "UNAUTHORIZED")
}

func TestWrongPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	wrong := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":wrong"))
	e.do(request{method: "GET", path: "/v2/app/tags/list", auth: wrong}).want(t, 401, "UNAUTHORIZED")
	q := url.Values{"service": {e.host}, "scope": {"repository:app:pull"}}
	e.do(request{method: "GET", path: "/oauth2/token?" + q.Encode(), auth: wrong}).want(t, 401, "UNAUTHORIZED")
	form := url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {"wrong"}, "service": {e.host}}
	e.do(request{method: "POST", path: "/oauth2/token", body: []byte(form.Encode()),
		header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}}).want(t, 401, "UNAUTHORIZED")
	// No credentials at all on the token endpoint: no anonymous pull.
	e.do(request{method: "GET", path: "/oauth2/token?" + q.Encode()}).want(t, 401, "UNAUTHORIZED")
	e.do(request{method: "GET", path: "/v2/", auth: "Bearer not.a.token"}).want(t, 401, "UNAUTHORIZED")
}

func TestTokenScopes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pushImage("a", "v1", "a")
	e.pushImage("b", "v1", "b")

	pullA := e.token("repository:a:pull")
	e.do(request{method: "GET", path: "/v2/", auth: bearer(pullA)}).want(t, 200, "")
	e.do(request{method: "GET", path: "/v2/a/manifests/v1", auth: bearer(pullA)}).want(t, 200, "")

	// Repository a's token on repository b.
	r := e.do(request{method: "GET", path: "/v2/b/manifests/v1", auth: bearer(pullA)}).want(t, 401, "UNAUTHORIZED")
	c := challengeParams(t, r.Header.Get("WWW-Authenticate"))
	if c["error"] != "insufficient_scope" || c["scope"] != "repository:b:pull" || c["service"] != e.host {
		t.Errorf("challenge %q", r.Header.Get("WWW-Authenticate"))
	}
	// Pull-only token for a push.
	r = e.do(request{method: "POST", path: "/v2/a/blobs/uploads/", auth: bearer(pullA)}).want(t, 401, "UNAUTHORIZED")
	if c := challengeParams(t, r.Header.Get("WWW-Authenticate")); c["error"] != "insufficient_scope" || c["scope"] != "repository:a:push,pull" {
		t.Errorf("challenge %q", r.Header.Get("WWW-Authenticate"))
	}

	// Several scopes, space-separated in one parameter and repeated.
	both := e.token("repository:a:pull repository:b:pull", "repository:c:push,pull")
	e.do(request{method: "GET", path: "/v2/b/manifests/v1", auth: bearer(both)}).want(t, 200, "")
	e.do(request{method: "POST", path: "/v2/c/blobs/uploads/", auth: bearer(both)}).want(t, 202, "")
	claims := decodeClaims(t, both)
	access, _ := json.Marshal(claims["access"])
	want := `[{"actions":["pull"],"name":"a","type":"repository"},{"actions":["pull"],"name":"b","type":"repository"},{"actions":["push","pull"],"name":"c","type":"repository"}]`
	if string(access) != want {
		t.Errorf("access claim %s\nwant %s", access, want)
	}
}

func TestLimitedPrincipal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.Auth = StaticAuth{Username: testUser, Password: testPassword, Principal: Principal{Actions: []string{ActionPull}}}
	})
	tok := e.token("repository:a:push,pull", "registry:catalog:*")
	claims := decodeClaims(t, tok)
	access, _ := json.Marshal(claims["access"])
	if want := `[{"actions":["pull"],"name":"a","type":"repository"}]`; string(access) != want {
		t.Errorf("access %s, want %s (the intersection)", access, want)
	}
	r := e.do(request{method: "POST", path: "/v2/a/blobs/uploads/", auth: "basic"}).want(t, 401, "UNAUTHORIZED")
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("challenge %q", r.Header.Get("WWW-Authenticate"))
	}
}

func TestTokenClaims(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.Auth = StaticAuth{Username: testUser, Password: testPassword,
			Principal: Principal{ObjectID: "oid-1", TenantID: "tenant-1", Actions: []string{ActionAll}}}
	})
	tok := e.token("repository:app:pull")
	c := decodeClaims(t, tok)
	now := float64(e.clock.Now().Unix())
	checks := map[string]any{
		"iss": "Azure Container Registry", "aud": e.host, "sub": "oid-1", "tenant": "tenant-1",
		"appid": testUser, "grant_type": "access_token", "version": "1.0",
		"iat": now, "exp": now + DefaultAccessTokenTTL.Seconds(),
	}
	for k, want := range checks {
		if c[k] != want {
			t.Errorf("claim %s = %v, want %v", k, c[k], want)
		}
	}
	if c["jti"] == "" || c["nbf"].(float64) > now {
		t.Errorf("jti %v nbf %v", c["jti"], c["nbf"])
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if string(hdr) != `{"alg":"RS256","typ":"JWT","kid":"test-key"}` {
		t.Errorf("header %s", hdr)
	}
}

func TestPayloadDecodesWithStdEncoding(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("abc?~>/<&\"\\-_:=é€😀\x7f ")
	randString := func() string {
		var b strings.Builder
		for range rng.IntN(40) {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 150 {
		p := Principal{ObjectID: randString(), ClientID: randString(), TenantID: randString(), Revision: randString(), Actions: []string{randString()}}
		access := []Access{{Type: "repository", Name: randString(), Actions: []string{ActionPull}}}
		for _, gt := range []string{grantAccessToken, grantRefreshToken} {
			tok, err := e.reg.issueToken(gt, p, access, e.clock.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			c := decodeClaims(t, tok) // fails unless StdEncoding decodes it
			if c["sub"] != p.ObjectID || c["appid"] != p.ClientID && p.ClientID != "" || c["rev"] != p.Revision && p.Revision != "" {
				t.Fatalf("claims %v do not round-trip principal %+v", c, p)
			}
			if _, err := e.reg.verifyToken(tok); err != nil {
				t.Fatalf("verify: %v", err)
			}
		}
	}
}

func TestTokenVerification(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other := newEnv(t) // same key, different login server (audience)
	tok := e.token("repository:app:pull")
	parts := strings.Split(tok, ".")

	claims := decodeClaims(t, tok)
	claims["access"] = []Access{{Type: "repository", Name: "app", Actions: []string{"push", "pull"}}}
	forged, _ := json.Marshal(claims)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]

	for name, tc := range map[string]string{
		"tampered":       tampered,
		"wrong audience": other.token("repository:app:pull"),
		"garbage":        "a.b.c",
	} {
		r := e.do(request{method: "GET", path: "/v2/app/tags/list", auth: bearer(tc)}).want(t, 401, "UNAUTHORIZED")
		if !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: challenge %q", name, r.Header.Get("WWW-Authenticate"))
		}
	}

	e.clock.Advance(DefaultAccessTokenTTL)
	e.do(request{method: "GET", path: "/v2/", auth: bearer(tok)}).want(t, 401, "UNAUTHORIZED")
}

// postToken sends a form to POST /oauth2/token.
func (e *env) postToken(form url.Values) response {
	e.t.Helper()
	return e.do(request{method: "POST", path: "/oauth2/token", body: []byte(form.Encode()),
		header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}})
}

func TestRefreshTokenFlows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pushImage("app", "v1", "x")

	// Password grant with access_type=offline (containerd's first request).
	r := e.postToken(url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword},
		"service": {e.host}, "scope": {"repository:app:pull"}, "access_type": {"offline"}, "client_id": {"containerd-client"}}).want(t, 200, "")
	var tr tokenResponseWire
	if err := json.Unmarshal(r.body, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.RefreshToken == "" || tr.AccessToken == "" || tr.ExpiresIn != int(DefaultAccessTokenTTL.Seconds()) {
		t.Fatalf("token response %s", r.body)
	}
	rc := decodeClaims(t, tr.RefreshToken)
	if rc["grant_type"] != "refresh_token" || rc["exp"].(float64)-rc["iat"].(float64) != DefaultRefreshTokenTTL.Seconds() {
		t.Errorf("refresh claims %v", rc)
	}
	perms, _ := json.Marshal(rc["permissions"])
	if string(perms) != `{"actions":["*"],"notActions":[]}` {
		t.Errorf("permissions %s", perms)
	}
	// A refresh token is not a bearer token.
	e.do(request{method: "GET", path: "/v2/app/manifests/v1", auth: bearer(tr.RefreshToken)}).want(t, 401, "UNAUTHORIZED")

	// Refresh grant.
	r = e.postToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken},
		"service": {e.host}, "scope": {"repository:app:pull,push"}}).want(t, 200, "")
	var tr2 tokenResponseWire
	_ = json.Unmarshal(r.body, &tr2)
	e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: bearer(tr2.AccessToken)}).want(t, 202, "")

	// The null-GUID user with the refresh token as password, as Basic auth
	// on /v2 and on GET /oauth2/token.
	nullBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte(NullUser+":"+tr.RefreshToken))
	e.do(request{method: "GET", path: "/v2/app/manifests/v1", auth: nullBasic}).want(t, 200, "")
	q := url.Values{"service": {e.host}, "scope": {"repository:app:pull"}}
	e.do(request{method: "GET", path: "/oauth2/token?" + q.Encode(), auth: nullBasic}).want(t, 200, "")
	// ... and on the password grant.
	e.postToken(url.Values{"grant_type": {"password"}, "username": {NullUser}, "password": {tr.RefreshToken},
		"service": {e.host}, "scope": {"repository:app:pull"}}).want(t, 200, "")

	// An access token as the password is limited to its own access.
	pullOnly := e.token("repository:app:pull")
	nullAccess := "Basic " + base64.StdEncoding.EncodeToString([]byte(NullUser+":"+pullOnly))
	e.do(request{method: "GET", path: "/v2/app/manifests/v1", auth: nullAccess}).want(t, 200, "")
	e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: nullAccess}).want(t, 401, "UNAUTHORIZED")
	// ... and a token obtained with it cannot widen it.
	q = url.Values{"service": {e.host}, "scope": {"repository:app:push,pull", "repository:other:pull"}}
	r = e.do(request{method: "GET", path: "/oauth2/token?" + q.Encode(), auth: nullAccess}).want(t, 200, "")
	_ = json.Unmarshal(r.body, &tr2)
	access, _ := json.Marshal(decodeClaims(t, tr2.AccessToken)["access"])
	if want := `[{"actions":["pull"],"name":"app","type":"repository"}]`; string(access) != want {
		t.Errorf("access %s, want %s", access, want)
	}
	// It is not a refresh token.
	e.postToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {pullOnly},
		"service": {e.host}, "scope": {"repository:app:pull"}}).want(t, 401, "UNAUTHORIZED")

	// Bad grants.
	e.postToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"junk"}, "service": {e.host}}).want(t, 401, "UNAUTHORIZED")
	e.postToken(url.Values{"grant_type": {"password"}, "refresh_token": {""}, "service": {e.host}}).want(t, 401, "UNAUTHORIZED")
	e.postToken(url.Values{"grant_type": {"client_credentials"}, "service": {e.host}}).want(t, 400, "UNSUPPORTED")
	e.postToken(url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword}, "service": {"elsewhere"}}).want(t, 400, "UNSUPPORTED")

	// Refresh tokens expire too.
	e.clock.Advance(DefaultRefreshTokenTTL)
	e.postToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "service": {e.host}}).want(t, 401, "UNAUTHORIZED")
}

func TestParseScopes(t *testing.T) {
	t.Parallel()
	got := parseScopes([]string{"repository:a/b:pull,push registry:catalog:*", "repository:host:5000/x:pull", "bad", "repository::pull", "repository:x:"})
	want := []string{"repository:a/b:pull,push", "registry:catalog:*", "repository:host:5000/x:pull"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("scope %d = %s, want %s", i, got[i], want[i])
		}
	}
}

// Tokens carry the registry's ID and only a registry with that ID takes
// them: registries share their signing key, and a login server freed by a
// deleted registry may be reused by a new one.
func TestTokenBoundToRegistryID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.ID = "incarnation-1" })
	e.pushImage("app", "v1", "1")
	tok := e.token("repository:app:pull")
	if rid := decodeClaims(t, tok)["rid"]; rid != "incarnation-1" {
		t.Fatalf("rid claim %v", rid)
	}
	e.do(request{method: "GET", path: "/v2/app/manifests/v1", auth: bearer(tok)}).want(t, 200, "")
	nullBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte(NullUser+":"+tok))
	for _, id := range []string{"incarnation-2", ""} {
		// The same name, login server, key and stores: only the ID differs.
		next, err := New(Config{Name: "berthtest", LoginServer: e.host, ID: id, Blobs: e.blobs, Store: e.store,
			Auth: StaticAuth{Username: testUser, Password: testPassword}, SigningKey: signingKey(t), KeyID: "test-key", Clock: e.clock})
		if err != nil {
			t.Fatal(err)
		}
		for _, auth := range []string{bearer(tok), nullBasic} {
			req := httptest.NewRequest("GET", "https://"+e.host+"/v2/app/manifests/v1", nil)
			req.Header.Set("Authorization", auth)
			w := httptest.NewRecorder()
			next.Handler().ServeHTTP(w, req)
			if w.Code != 401 {
				t.Errorf("registry %q took a token of incarnation-1 (%s…): %d", id, auth[:8], w.Code)
			}
		}
	}
}

// A token never yields a refresh token, and what is issued on a token
// expires no later than it: tokens cannot renew themselves past their
// credential.
func TestTokensDoNotRenewThemselves(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pushImage("app", "v1", "x")
	decode := func(r response) tokenResponseWire {
		t.Helper()
		var tr tokenResponseWire
		if err := json.Unmarshal(r.body, &tr); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	r := e.postToken(url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword},
		"service": {e.host}, "scope": {"repository:app:pull"}, "access_type": {"offline"}}).want(t, 200, "")
	refresh := decode(r).RefreshToken
	refreshExp := decodeClaims(t, refresh)["exp"].(float64)
	basic := func(tok string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(NullUser+":"+tok))
	}
	q := url.Values{"service": {e.host}, "scope": {"repository:app:pull"}, "offline_token": {"true"}}

	// docker login with the refresh token: an access token, no new refresh
	// token (docker then keeps the refresh token as the password).
	tr := decode(e.do(request{method: "GET", path: "/oauth2/token?" + q.Encode(), auth: basic(refresh)}).want(t, 200, ""))
	if tr.RefreshToken != "" {
		t.Error("GET /oauth2/token with a refresh token as password issued a refresh token")
	}
	tr = decode(e.postToken(url.Values{"grant_type": {"password"}, "username": {NullUser}, "password": {refresh},
		"service": {e.host}, "access_type": {"offline"}}).want(t, 200, ""))
	if tr.RefreshToken != "" {
		t.Error("the password grant with a refresh token as password issued a refresh token")
	}

	// Ten minutes before the refresh token expires, what it yields expires
	// with it.
	e.clock.Advance(DefaultRefreshTokenTTL - 10*time.Minute)
	tr = decode(e.postToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh},
		"service": {e.host}, "scope": {"repository:app:pull"}}).want(t, 200, ""))
	if exp := decodeClaims(t, tr.AccessToken)["exp"].(float64); exp != refreshExp || tr.ExpiresIn != 600 {
		t.Errorf("access token from the refresh grant: exp %v (refresh token's %v), expires_in %d", exp, refreshExp, tr.ExpiresIn)
	}
	access := tr.AccessToken

	// docker login with an access token (acr.md §2.5): works, offline or
	// not, without a refresh token and no longer than the access token.
	e.clock.Advance(5 * time.Minute)
	tr = decode(e.do(request{method: "GET", path: "/oauth2/token?" + q.Encode(), auth: basic(access)}).want(t, 200, ""))
	if tr.RefreshToken != "" {
		t.Error("an access token as password yielded a refresh token")
	}
	if exp := decodeClaims(t, tr.AccessToken)["exp"].(float64); exp != refreshExp {
		t.Errorf("access token from an access token: exp %v, want %v", exp, refreshExp)
	}
	// The refresh grant takes refresh tokens only.
	e.postToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {access}, "service": {e.host}}).want(t, 401, "UNAUTHORIZED")

	// When the refresh token expires, everything it led to has too.
	e.clock.Advance(5 * time.Minute)
	e.do(request{method: "GET", path: "/v2/app/manifests/v1", auth: bearer(tr.AccessToken)}).want(t, 401, "UNAUTHORIZED")
	e.do(request{method: "GET", path: "/oauth2/token?" + q.Encode(), auth: basic(refresh)}).want(t, 401, "UNAUTHORIZED")
}

// An anonymous token works only while anonymous pull is allowed.
func TestAnonymousTokenRevoked(t *testing.T) {
	t.Parallel()
	var on atomic.Bool
	on.Store(true)
	e := newEnv(t, func(c *Config) { c.AnonymousPull = on.Load })
	img := e.pushImage("app", "v1", "1")
	var tr tokenResponseWire
	r := e.do(request{method: "GET", path: "/oauth2/token?scope=repository:app:pull&service=" + e.host}).want(t, 200, "")
	_ = json.Unmarshal(r.body, &tr)
	layer := "/v2/app/blobs/" + digest.FromBytes(img.layer).String()
	nullBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte(NullUser+":"+tr.Token))
	e.do(request{method: "GET", path: layer, auth: bearer(tr.Token)}).want(t, 200, "")
	e.do(request{method: "GET", path: layer, auth: nullBasic}).want(t, 200, "")

	on.Store(false)
	r = e.do(request{method: "GET", path: layer, auth: bearer(tr.Token)}).want(t, 401, "UNAUTHORIZED")
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("challenge %q", r.Header.Get("WWW-Authenticate"))
	}
	e.do(request{method: "GET", path: layer, auth: nullBasic}).want(t, 401, "UNAUTHORIZED")
	e.do(request{method: "GET", path: "/oauth2/token?scope=repository:app:pull&service=" + e.host, auth: nullBasic}).want(t, 401, "UNAUTHORIZED")

	on.Store(true) // allowed again: the token is good again until it expires
	e.do(request{method: "GET", path: layer, auth: bearer(tr.Token)}).want(t, 200, "")
}

// Tokens carry their principal's Revision, and stop working as soon as the
// Authenticator says their credential no longer holds.
func TestRevokedCredential(t *testing.T) {
	t.Parallel()
	var revoked atomic.Bool
	var asked atomic.Value // the last principal Current was asked about
	e := newEnv(t, withAAD, func(c *Config) {
		a := c.Auth.(StaticAuth)
		a.Principal = Principal{ObjectID: "oid-1", Revision: "password-2"}
		a.Revoked = func(p Principal) bool { asked.Store(p); return revoked.Load() }
		c.Auth = a
	})
	e.pushImage("app", "v1", "1")
	r := e.postToken(url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword},
		"service": {e.host}, "scope": {"repository:app:pull"}, "access_type": {"offline"}}).want(t, 200, "")
	var tr tokenResponseWire
	_ = json.Unmarshal(r.body, &tr)
	if rev := decodeClaims(t, tr.RefreshToken)["rev"]; rev != "password-2" {
		t.Errorf("rev claim %v", rev)
	}
	var ex exchangeResponseWire
	_ = json.Unmarshal(e.postForm("/oauth2/exchange", url.Values{"grant_type": {"access_token"}, "service": {e.host},
		"access_token": {testAADToken}}).want(t, 200, "").body, &ex)

	manifest := "/v2/app/manifests/v1"
	nullBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte(NullUser+":"+tr.RefreshToken))
	e.do(request{method: "GET", path: manifest, auth: bearer(tr.AccessToken)}).want(t, 200, "")
	if p, _ := asked.Load().(Principal); p.ObjectID != "oid-1" || p.ClientID != testUser || p.Revision != "password-2" {
		t.Errorf("Current was asked about %+v", p)
	}
	e.do(request{method: "GET", path: manifest, auth: nullBasic}).want(t, 200, "")

	revoked.Store(true)
	r = e.do(request{method: "GET", path: manifest, auth: bearer(tr.AccessToken)}).want(t, 401, "UNAUTHORIZED")
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("challenge %q", r.Header.Get("WWW-Authenticate"))
	}
	e.do(request{method: "GET", path: manifest, auth: nullBasic}).want(t, 401, "UNAUTHORIZED")
	for _, rt := range []string{tr.RefreshToken, ex.RefreshToken} {
		e.postToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "service": {e.host}}).want(t, 401, "UNAUTHORIZED")
	}
}
