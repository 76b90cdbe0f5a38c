package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/pki"
	"github.com/berth-dev/berth/internal/store"
	"github.com/berth-dev/berth/internal/store/memory"
)

// testEnv is a Service behind an httptest TLS server using berth's PKI.
type testEnv struct {
	svc    *Service
	clk    *clock.Fake
	srv    *httptest.Server
	client *http.Client
	port   string
}

// newEnv starts a Service on 127.0.0.1 with issuer hosts 127.0.0.1:PORT and
// localhost:PORT.
func newEnv(t *testing.T, st store.Store) *testEnv {
	t.Helper()
	p, err := pki.LoadOrCreate(t.TempDir(), nil, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	if st == nil {
		st = memory.New()
	}
	srv := httptest.NewUnstartedServer(nil)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	clk := clock.NewFake(time.Now())
	svc, err := New(Config{Store: st, KeyDir: t.TempDir(), Clock: clk,
		IssuerHosts: []string{"127.0.0.1:" + port, "LOCALHOST:" + port}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = svc
	srv.TLS = p.TLSConfig()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: p.ClientTLSConfig()}}
	t.Cleanup(client.CloseIdleConnections)
	return &testEnv{svc: svc, clk: clk, srv: srv, client: client, port: port}
}

func (e *testEnv) url(host, path string) string { return "https://" + host + ":" + e.port + path }

// do sends a request and decodes the JSON answer.
func (e *testEnv) do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 && json.Unmarshal(body, &m) != nil {
		t.Fatalf("%s %s: body is not JSON: %s", req.Method, req.URL, body)
	}
	return resp.StatusCode, m
}

func (e *testEnv) get(t *testing.T, u string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return e.do(t, req)
}

func (e *testEnv) post(t *testing.T, u string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(t, req)
}

func ccForm(scope string) url.Values {
	return url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {DefaultClientID},
		"client_secret": {DefaultClientSecret},
		"scope":         {scope},
		"client_info":   {"1"},
		"claims":        {`{"access_token":{"xms_cc":{"values":["CP1"]}}}`},
	}
}

func TestNewIsIdempotent(t *testing.T) {
	t.Parallel()
	st := memory.New()
	dir := t.TempDir()
	s1, err := New(Config{Store: st, KeyDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := New(Config{Store: st, KeyDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if s1.key.kid != s2.key.kid || s1.key.priv.N.Cmp(s2.key.priv.N) != 0 {
		t.Fatal("signing key changed across restarts")
	}
	fi, err := os.Stat(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
	// The principal record was written once and holds no plain secret.
	var raw []byte
	st.View(context.Background(), func(tx store.Tx) error {
		raw, err = tx.Get(tablePrincipals, DefaultClientID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(DefaultClientSecret)) {
		t.Fatal("secret stored in clear")
	}
	p, err := s2.CheckClientSecret(context.Background(), DefaultClientID, DefaultClientSecret)
	if err != nil {
		t.Fatal(err)
	}
	want := Principal{Kind: KindServicePrincipal, TenantID: DefaultTenantID, ClientID: DefaultClientID,
		ObjectID: DefaultObjectID, DisplayName: "berth default service principal", AppObjectID: DefaultAppObjectID}
	if p != want {
		t.Fatalf("principal %+v, want %+v", p, want)
	}
	// A token signed before the restart verifies after it.
	tok, err := s1.IssueToken(context.Background(), DefaultClientID, AudienceARM, "127.0.0.1:7443")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Verify(tok, AudienceARM); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptKeyIsAnError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, keyFile), []byte("garbage"), 0o600)
	if _, err := New(Config{Store: memory.New(), KeyDir: dir}); err == nil {
		t.Fatal("New accepted a corrupt key file")
	}
	if _, err := New(Config{KeyDir: dir}); err == nil {
		t.Fatal("New accepted a config without a store")
	}
}

func TestCheckClientSecret(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Store: memory.New(), KeyDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.CheckClientSecret(ctx, strings.ToUpper(DefaultClientID), DefaultClientSecret); err != nil {
		t.Errorf("upper-case client ID: %v", err)
	}
	for _, tc := range []struct {
		id, secret string
		want       error
	}{
		{DefaultClientID, "wrong", ErrInvalidSecret},
		{DefaultClientID, "", ErrInvalidSecret},
		{DefaultClientID, DefaultClientSecret + "x", ErrInvalidSecret},
		{"be127000-0000-4000-8000-0000000000ff", DefaultClientSecret, ErrUnknownClient},
		{"", "", ErrUnknownClient},
	} {
		if _, err := s.CheckClientSecret(ctx, tc.id, tc.secret); !errors.Is(err, tc.want) {
			t.Errorf("CheckClientSecret(%q, %q) = %v, want %v", tc.id, tc.secret, err, tc.want)
		}
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]bool{
		"/" + DefaultTenantID + "/v2.0/.well-known/openid-configuration":              true,
		"/BE127000-0000-4000-8000-000000000001/V2.0/.Well-Known/OpenID-Configuration": true,
		"/" + DefaultTenantID + "/.well-known/openid-configuration":                   true,
		"/adfs/.well-known/openid-configuration":                                      true,
		"//adfs//oauth2/token":                                                        true,
		"/common/discovery/keys":                                                      true,
		"/x/discovery/v2.0/keys":                                                      true,
		"/x/oauth2/v2.0/token":                                                        true,
		"/x/oauth2/token":                                                             true,
		"/oauth2/token":                                                               false, // the registry's
		"/oauth2/exchange":                                                            false,
		"/subscriptions/x/resourcegroups":                                             false,
		"/metadata/endpoints":                                                         false,
		"/":                                                                           false,
		"/x/oauth2/token/more":                                                        false,
	} {
		if got := Match(path); got != want {
			t.Errorf("Match(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, tc := range []struct {
		host, path                             string
		issuer, token, authorize, jwks, tenant string
	}{
		{"127.0.0.1", "/" + DefaultTenantID + "/v2.0/.well-known/openid-configuration",
			"/" + DefaultTenantID + "/v2.0", "/" + DefaultTenantID + "/oauth2/v2.0/token",
			"/" + DefaultTenantID + "/oauth2/v2.0/authorize", "/" + DefaultTenantID + "/discovery/v2.0/keys", DefaultTenantID},
		{"localhost", "/" + strings.ToUpper(DefaultTenantID) + "/v2.0/.well-known/openid-configuration?",
			"/" + DefaultTenantID + "/v2.0", "/" + DefaultTenantID + "/oauth2/v2.0/token",
			"/" + DefaultTenantID + "/oauth2/v2.0/authorize", "/" + DefaultTenantID + "/discovery/v2.0/keys", DefaultTenantID},
		{"127.0.0.1", "/" + DefaultTenantID + "/.well-known/openid-configuration",
			"/" + DefaultTenantID + "/", "/" + DefaultTenantID + "/oauth2/token",
			"/" + DefaultTenantID + "/oauth2/authorize", "/" + DefaultTenantID + "/discovery/keys", DefaultTenantID},
		{"127.0.0.1", "/adfs/.well-known/openid-configuration",
			"/adfs", "/adfs/oauth2/token", "/adfs/oauth2/authorize", "/adfs/discovery/keys", DefaultTenantID},
		{"localhost", "/common/v2.0/.well-known/openid-configuration",
			"/{tenantid}/v2.0", "/common/oauth2/v2.0/token", "/common/oauth2/v2.0/authorize", "/common/discovery/v2.0/keys", ""},
	} {
		status, doc := e.get(t, e.url(tc.host, tc.path))
		if status != http.StatusOK {
			t.Errorf("%s%s: status %d %v", tc.host, tc.path, status, doc)
			continue
		}
		base := e.url(tc.host, "")
		for field, want := range map[string]string{
			"issuer": base + tc.issuer, "token_endpoint": base + tc.token,
			"authorization_endpoint": base + tc.authorize, "jwks_uri": base + tc.jwks,
		} {
			if doc[field] != want {
				t.Errorf("%s%s: %s = %v, want %s", tc.host, tc.path, field, doc[field], want)
			}
		}
		if tc.tenant != "" && doc["tenant_id"] != tc.tenant {
			t.Errorf("%s%s: tenant_id = %v", tc.host, tc.path, doc["tenant_id"])
		}
	}

	// Errors: unknown tenant, a host berth does not serve, a wrong method.
	status, doc := e.get(t, e.url("127.0.0.1", "/be127000-0000-4000-8000-0000000000ff/v2.0/.well-known/openid-configuration"))
	if status != http.StatusBadRequest || doc["error"] != "invalid_tenant" || !strings.HasPrefix(doc["error_description"].(string), "AADSTS90002:") {
		t.Errorf("unknown tenant: %d %v", status, doc)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url("127.0.0.1", "/adfs/.well-known/openid-configuration"), nil)
	req.Host = "berth.invalid:" + e.port
	if status, doc := e.do(t, req); status != http.StatusBadRequest || doc["error"] != "invalid_request" {
		t.Errorf("foreign host: %d %v", status, doc)
	}
	req, _ = http.NewRequest(http.MethodPost, e.url("127.0.0.1", "/adfs/.well-known/openid-configuration"), nil)
	if status, _ := e.do(t, req); status != http.StatusMethodNotAllowed {
		t.Errorf("POST discovery: %d", status)
	}
	if status, _ := e.get(t, e.url("127.0.0.1", "/adfs/oauth2/token")); status != http.StatusMethodNotAllowed {
		t.Errorf("GET token: %d", status)
	}
	if status, doc := e.get(t, e.url("127.0.0.1", "/adfs/oauth2/authorize")); status != http.StatusBadRequest || doc["error"] == nil {
		t.Errorf("authorize: %d %v", status, doc)
	}
}

// TestJWKS checks a token's signature against the published key, decoded
// independently of the service's own code.
func TestJWKS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	_, tok := e.post(t, e.url("127.0.0.1", "/"+DefaultTenantID+"/oauth2/v2.0/token"), ccForm(AudienceContainer+"/.default"))
	token, _ := tok["access_token"].(string)
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", token)
	}
	var hdr struct{ Alg, Kid, Typ string }
	hb, _ := b64.DecodeString(parts[0])
	json.Unmarshal(hb, &hdr)
	if hdr.Alg != "RS256" || hdr.Typ != "JWT" || hdr.Kid == "" {
		t.Fatalf("header %s", hb)
	}
	for _, path := range []string{"/" + DefaultTenantID + "/discovery/v2.0/keys", "/common/discovery/keys", "/adfs/discovery/keys"} {
		status, doc := e.get(t, e.url("localhost", path))
		keys, _ := doc["keys"].([]any)
		if status != http.StatusOK || len(keys) != 1 {
			t.Fatalf("%s: %d %v", path, status, doc)
		}
		k := keys[0].(map[string]any)
		if k["kid"] != hdr.Kid || k["kty"] != "RSA" || k["alg"] != "RS256" || k["use"] != "sig" {
			t.Fatalf("%s: key %v", path, k)
		}
		n, _ := b64.DecodeString(k["n"].(string))
		eb, _ := b64.DecodeString(k["e"].(string))
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(eb).Int64())}
		digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		sig, _ := b64.DecodeString(parts[2])
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			t.Fatalf("%s: signature does not verify with the published key: %v", path, err)
		}
		if thumbprint(pub) != hdr.Kid {
			t.Fatal("kid is not the key's thumbprint")
		}
	}
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tenant := "/" + DefaultTenantID
	for _, tc := range []struct {
		name, host, path string
		form             url.Values
		basic            bool
		aud, iss, ver    string
		v1               bool // v1 response shape
	}{
		{"v2 ARM double slash", "127.0.0.1", tenant + "/oauth2/v2.0/token",
			ccForm("https://management.core.windows.net//.default openid offline_access profile"), false,
			AudienceARM, tenant + "/v2.0", "2.0", false},
		{"v2 ARM alt without slash", "localhost", tenant + "/oauth2/v2.0/token",
			ccForm("https://management.azure.com/.default"), false,
			AudienceARMAlt, tenant + "/v2.0", "2.0", false},
		{"v2 ACR basic auth", "localhost", strings.ToUpper(tenant) + "/oauth2/v2.0/token",
			ccForm("https://containerregistry.azure.net/.default"), true,
			AudienceContainer, tenant + "/v2.0", "2.0", false},
		{"v2 common", "127.0.0.1", "/common/oauth2/v2.0/token",
			ccForm("https://management.core.windows.net//.default"), false,
			AudienceARM, tenant + "/v2.0", "2.0", false},
		{"v1 resource", "127.0.0.1", tenant + "/oauth2/token",
			url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID},
				"client_secret": {DefaultClientSecret}, "resource": {"https://management.core.windows.net"}}, false,
			AudienceARM, tenant + "/", "1.0", true},
		{"adfs scope (az)", "localhost", "/adfs/oauth2/token",
			ccForm("https://management.core.windows.net//.default"), false,
			AudienceARM, "/adfs", "1.0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := tc.form
			if tc.basic {
				form = url.Values{}
				for k, v := range tc.form {
					if k != "client_id" && k != "client_secret" {
						form[k] = v
					}
				}
			}
			req, _ := http.NewRequest(http.MethodPost, e.url(tc.host, tc.path), strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("client-request-id", "corr-1")
			if tc.basic {
				req.SetBasicAuth(url.QueryEscape(DefaultClientID), url.QueryEscape(DefaultClientSecret))
			}
			status, body := e.do(t, req)
			if status != http.StatusOK {
				t.Fatalf("status %d: %v", status, body)
			}
			if body["token_type"] != "Bearer" {
				t.Errorf("token_type %v", body["token_type"])
			}
			if tc.v1 {
				if body["expires_in"] != "3599" || body["resource"] != "https://management.core.windows.net" || body["expires_on"] == nil {
					t.Errorf("v1 response %v", body)
				}
			} else if body["expires_in"] != 3599.0 || body["ext_expires_in"] != 3599.0 {
				t.Errorf("v2 response %v", body)
			}
			c, err := e.svc.Verify(body["access_token"].(string), AudienceARM, AudienceARMAlt, AudienceContainer)
			if err != nil {
				t.Fatal(err)
			}
			now := e.clk.Now().Unix()
			want := Claims{
				Audience: tc.aud, Issuer: e.url(tc.host, tc.iss), IssuedAt: now, NotBefore: now, Expiry: now + 3600,
				TenantID: DefaultTenantID, ObjectID: DefaultObjectID, Subject: DefaultObjectID,
				AppID: DefaultClientID, AppIDACR: "1", AZP: DefaultClientID, AZPACR: "1", IDType: "app", Version: tc.ver,
				UTI: c.UTI, JTI: c.JTI,
			}
			if *c != want {
				t.Errorf("claims\n got %+v\nwant %+v", *c, want)
			}
			if c.UTI == "" || c.JTI == "" {
				t.Error("no token identifier")
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	v2 := "/" + DefaultTenantID + "/oauth2/v2.0/token"
	arm := "https://management.core.windows.net//.default"
	with := func(f url.Values, k, v string) url.Values {
		f = cloneValues(f)
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	for _, tc := range []struct {
		name   string
		path   string
		form   url.Values
		status int
		code   string
		aadsts string
	}{
		{"wrong secret", v2, with(ccForm(arm), "client_secret", "nope"), 401, "invalid_client", "7000215"},
		{"missing secret", v2, with(ccForm(arm), "client_secret", ""), 401, "invalid_client", "7000216"},
		{"unknown client", v2, with(ccForm(arm), "client_id", "be127000-0000-4000-8000-0000000000ff"), 400, "unauthorized_client", "700016"},
		{"missing client", v2, with(ccForm(arm), "client_id", ""), 400, "invalid_request", "900144"},
		{"unknown resource", v2, ccForm("https://vault.azure.net/.default"), 400, "invalid_resource", "500011"},
		{"unknown v1 resource", "/adfs/oauth2/token", with(with(ccForm(""), "scope", ""), "resource", "https://graph.windows.net/"), 400, "invalid_resource", "500011"},
		{"scope without .default", v2, ccForm("https://management.azure.com/user_impersonation"), 400, "invalid_scope", "1002012"},
		{"two resources", v2, ccForm(arm + " https://containerregistry.azure.net/.default"), 400, "invalid_scope", "28000"},
		{"missing scope", v2, with(ccForm(""), "scope", ""), 400, "invalid_request", "900144"},
		{"password grant", v2, with(ccForm(arm), "grant_type", "password"), 400, "unsupported_grant_type", "70003"},
		{"missing grant", v2, with(ccForm(arm), "grant_type", ""), 400, "invalid_request", "900144"},
		{"unknown tenant", "/be127000-0000-4000-8000-0000000000ff/oauth2/v2.0/token", ccForm(arm), 400, "invalid_request", "90002"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.url("127.0.0.1", tc.path), strings.NewReader(tc.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("client-request-id", "corr-2")
			status, body := e.do(t, req)
			if status != tc.status || body["error"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
			desc, _ := body["error_description"].(string)
			if !strings.HasPrefix(desc, "AADSTS"+tc.aadsts+": ") || !strings.Contains(desc, "Correlation ID: corr-2") {
				t.Errorf("error_description %q", desc)
			}
			codes, _ := body["error_codes"].([]any)
			if len(codes) != 1 || codes[0] != mustFloat(tc.aadsts) {
				t.Errorf("error_codes %v", body["error_codes"])
			}
			if body["correlation_id"] != "corr-2" || body["trace_id"] == "" || body["timestamp"] == "" {
				t.Errorf("body %v", body)
			}
			if _, ok := body["access_token"]; ok {
				t.Error("error response carries a token")
			}
		})
	}
}

func cloneValues(v url.Values) url.Values {
	m := url.Values{}
	for k, s := range v {
		m[k] = append([]string(nil), s...)
	}
	return m
}

func mustFloat(s string) float64 {
	var f float64
	json.Unmarshal([]byte(s), &f)
	return f
}

func TestVerify(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	st := memory.New()
	s, err := New(Config{Store: st, KeyDir: t.TempDir(), Clock: clk, IssuerHosts: []string{"127.0.0.1:7443", "[::1]:7443", "berth.test"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	issue := func(host, resource string) string {
		t.Helper()
		tok, err := s.IssueToken(ctx, DefaultClientID, resource, host)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tok := issue("127.0.0.1:7443", "https://management.azure.com")

	// Audience comparison ignores case and trailing slashes.
	for _, aud := range []string{"https://management.azure.com", "https://management.azure.com/", "HTTPS://MANAGEMENT.AZURE.COM//"} {
		if _, err := s.Verify(tok, AudienceARM, aud); err != nil {
			t.Errorf("audience %q: %v", aud, err)
		}
	}
	for _, host := range []string{"[::1]:7443", "berth.test:443", "BERTH.TEST"} {
		if _, err := s.Verify(issue(host, AudienceARM), AudienceARM); err != nil {
			t.Errorf("issuer host %s: %v", host, err)
		}
	}

	check := func(name string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) || !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
	}
	_, err = s.Verify(tok, AudienceContainer)
	check("wrong audience", err, ErrWrongAudience)
	_, err = s.Verify(tok)
	check("no audience", err, ErrWrongAudience)
	_, err = s.Verify(issue("127.0.0.2:7443", AudienceARM), AudienceARM)
	check("foreign issuer host", err, ErrInvalidToken)
	if errors.Is(err, ErrTokenExpired) || errors.Is(err, ErrBadSignature) || errors.Is(err, ErrWrongAudience) {
		t.Errorf("foreign issuer: over-specific error %v", err)
	}

	// Tampering.
	parts := strings.Split(tok, ".")
	payload, _ := b64.DecodeString(parts[1])
	forged := parts[0] + "." + b64.EncodeToString(bytes.Replace(payload, []byte(DefaultObjectID), []byte("be127000-0000-4000-8000-0000000000ee"), 1)) + "." + parts[2]
	_, err = s.Verify(forged, AudienceARM)
	check("tampered payload", err, ErrBadSignature)
	_, err = s.Verify(parts[0]+"."+parts[1]+"."+parts[2][:len(parts[2])-4]+"AAAA", AudienceARM)
	check("tampered signature", err, ErrBadSignature)
	none := b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	_, err = s.Verify(none+"."+parts[1]+".", AudienceARM)
	check("alg none", err, ErrInvalidToken)
	hs := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT","kid":"` + s.key.kid + `"}`))
	_, err = s.Verify(hs+"."+parts[1]+"."+parts[2], AudienceARM)
	check("alg HS256", err, ErrInvalidToken)
	for _, garbage := range []string{"", "a.b", "a.b.c", "....", strings.Repeat("a", maxTokenLen+1)} {
		_, err = s.Verify(garbage, AudienceARM)
		check("garbage "+garbage[:min(len(garbage), 8)], err, ErrInvalidToken)
	}

	// Another service (another key) signed it.
	other, err := New(Config{Store: memory.New(), KeyDir: t.TempDir(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	otherTok, _ := other.IssueToken(ctx, DefaultClientID, AudienceARM, "127.0.0.1:7443")
	_, err = s.Verify(otherTok, AudienceARM)
	check("other key", err, ErrBadSignature)

	// Expiry, with five minutes of skew.
	clk.Advance(time.Hour + 4*time.Minute)
	if _, err := s.Verify(tok, AudienceARMAlt); err != nil {
		t.Errorf("within skew: %v", err)
	}
	clk.Advance(2 * time.Minute)
	_, err = s.Verify(tok, AudienceARMAlt)
	check("expired", err, ErrTokenExpired)

	// Not yet valid: a token from the future.
	future := issue("127.0.0.1:7443", AudienceARM)
	clk2 := clock.NewFake(clk.Now().Add(-10 * time.Minute))
	s.clk = clk2
	_, err = s.Verify(future, AudienceARM)
	check("not yet valid", err, ErrInvalidToken)
}

func TestPrincipalsCreateDeleteRevoke(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t)
	p, secret, err := s.CreateServicePrincipal(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != KindServicePrincipal || !s.Live(p.ObjectID) || len(secret) != 40 {
		t.Fatalf("created %+v (secret of %d chars)", p, len(secret))
	}
	if _, err := s.CheckClientSecret(ctx, p.ClientID, secret); err != nil {
		t.Fatalf("new secret refused: %v", err)
	}
	second, _, err := s.AddSecret(ctx, p.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CheckClientSecret(ctx, p.ClientID, second); err != nil {
		t.Fatalf("added secret refused: %v", err)
	}
	tok, err := s.IssueToken(ctx, p.ClientID, AudienceARM, "127.0.0.1:7443")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(tok, AudienceARM); err != nil {
		t.Fatalf("token of a live principal: %v", err)
	}
	if got, err := s.PrincipalByObjectID(ctx, p.ObjectID); err != nil || got.ClientID != p.ClientID {
		t.Fatalf("by object id: %+v %v", got, err)
	}
	if err := s.DeletePrincipal(ctx, p.ObjectID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(tok, AudienceARM); !errors.Is(err, ErrRevoked) || !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token of a deleted principal: %v", err)
	}
	if _, err := s.CheckClientSecret(ctx, p.ClientID, secret); !errors.Is(err, ErrUnknownClient) {
		t.Fatalf("secret of a deleted principal: %v", err)
	}
	if err := s.DeletePrincipal(ctx, p.ObjectID); !errors.Is(err, ErrUnknownClient) {
		t.Fatalf("second delete: %v", err)
	}
	if err := s.DeletePrincipal(ctx, DefaultObjectID); !errors.Is(err, ErrDefaultPrincipal) {
		t.Fatalf("default principal delete: %v", err)
	}
}

func TestManagedIdentityTokens(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t)
	const rid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1"
	mi, err := s.CreateManagedIdentity(ctx, rid, "id1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.CreateManagedIdentity(ctx, strings.ToUpper(rid), "id1")
	if err != nil || again != mi {
		t.Fatalf("not idempotent: %+v vs %+v (%v)", again, mi, err)
	}
	if _, _, err := s.AddSecret(ctx, mi.ClientID); err == nil {
		t.Fatal("a managed identity got a secret")
	}
	tok, c, err := s.IssueFor(ctx, mi.ClientID, "https://management.azure.com", "https://127.0.0.1:7443")
	if err != nil {
		t.Fatal(err)
	}
	if c.MIResID != rid || c.ObjectID != mi.ObjectID || c.AppID != mi.ClientID || c.Audience != AudienceARMAlt {
		t.Fatalf("claims: %+v", c)
	}
	if _, err := s.Verify(tok, AudienceARMAlt); err != nil {
		t.Fatalf("managed identity token: %v", err)
	}
	list, err := s.ListPrincipals(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := s.DeletePrincipal(ctx, mi.ObjectID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(tok, AudienceARMAlt); !errors.Is(err, ErrRevoked) {
		t.Fatalf("deleted identity's token: %v", err)
	}
}

// newTestService is a Service on an in-memory store that accepts any host.
func newTestService(t *testing.T) *Service {
	t.Helper()
	s, err := New(Config{Store: memory.New(), KeyDir: t.TempDir(), Clock: clock.NewFake(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
