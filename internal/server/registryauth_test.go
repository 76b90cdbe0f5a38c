package server

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"

	blobmem "github.com/berth-dev/berth/internal/blob/memory"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/rbac"
	"github.com/berth-dev/berth/internal/registry"
	"github.com/berth-dev/berth/internal/store/memory"
)

// registryEnv serves one registry whose principals' actions come from
// their roles at scope (registryAuth, as berth wires it).
type registryEnv struct {
	ids    *identity.Service
	roles  *rbac.Service
	login  string
	url    string
	client *http.Client
}

func newRegistryEnv(t *testing.T) *registryEnv {
	t.Helper()
	ctx := context.Background()
	st := memory.New()
	ids, err := identity.New(identity.Config{Store: st, KeyDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	roles := &rbac.Service{Store: st, Principals: principals{ids}, DefaultPrincipal: identity.DefaultObjectID, DefaultScope: subPath}
	if err := roles.Start(ctx); err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	login := ln.Addr().String()
	reg, err := registry.New(registry.Config{Name: "berth", LoginServer: login, Blobs: blobmem.New(), Store: st,
		Auth: registryAuth{ids: ids, roles: roles, registry: "berth", defaultScope: subPath}, SigningKey: key, KeyID: "k"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(reg.Handler())
	ts.Listener.Close()
	ts.Listener = ln
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return &registryEnv{ids: ids, roles: roles, login: login, url: ts.URL, client: ts.Client()}
}

// access asks the token endpoint (Basic client id and secret) for scopes
// and returns what the access token grants, as "type:name:actions" sorted.
func (e *registryEnv) access(t *testing.T, clientID, secret string, scopes ...string) (string, string) {
	t.Helper()
	q := url.Values{"service": {e.login}, "scope": scopes}
	req, _ := http.NewRequest("GET", e.url+"/oauth2/token?"+q.Encode(), nil)
	req.SetBasicAuth(clientID, secret)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("token for %s: %d", clientID, resp.StatusCode)
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return grantOf(t, body.AccessToken), body.AccessToken
}

func grantOf(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", tok)
	}
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Access []registry.Access `json:"access"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	// One entry per resource, its actions merged (a request may name a
	// resource in several scopes).
	merged := map[string][]string{}
	for _, a := range c.Access {
		merged[a.Type+":"+a.Name] = append(merged[a.Type+":"+a.Name], a.Actions...)
	}
	var out []string
	for k, acts := range merged {
		sort.Strings(acts)
		out = append(out, k+":"+strings.Join(acts, ","))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func (e *registryEnv) get(t *testing.T, path, tok string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRegistryScopesFromRoles: the token service grants each principal the
// registry actions its roles hold at the registry's scope (the default
// registry's is the default subscription): AcrPull pull and the catalog,
// AcrPush push too, AcrDelete delete, Reader as AcrPull, Owner all; no
// role, an empty grant (the data request then answers 401). Removing a
// role stops the tokens issued under it at once; the Entra exchange gets
// the same grant.
func TestRegistryScopesFromRoles(t *testing.T) {
	e := newRegistryEnv(t)
	ctx := context.Background()
	type sp struct{ clientID, secret, oid string }
	mk := func(name, role string) sp {
		p, secret, err := e.ids.CreateServicePrincipal(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if role != "" {
			if _, _, err := e.roles.Create(ctx, rbac.Assignment{Name: newGUID(), Scope: subPath, RoleDefinitionID: role, PrincipalID: p.ObjectID}, ""); err != nil {
				t.Fatal(err)
			}
		}
		return sp{p.ClientID, secret, p.ObjectID}
	}
	scopes := []string{"repository:app:pull,push,delete", "repository:app:metadata_read,metadata_write", "registry:catalog:*"}
	const (
		cat  = "registry:catalog:*"
		pull = "repository:app:metadata_read,pull"
	)
	cases := []struct {
		role, want string
	}{
		{rbac.AcrPull, cat + " " + pull},
		{rbac.AcrPush, cat + " repository:app:metadata_read,metadata_write,pull,push"},
		{rbac.AcrDelete, "repository:app:delete"},
		{rbac.Reader, cat + " " + pull},
		{rbac.Contributor, cat + " repository:app:delete,metadata_read,metadata_write,pull,push"},
		{rbac.Owner, cat + " repository:app:delete,metadata_read,metadata_write,pull,push"},
		{"", ""},
	}
	for _, c := range cases {
		p := mk("sp", c.role)
		got, tok := e.access(t, p.clientID, p.secret, scopes...)
		if norm(got) != norm(c.want) {
			t.Errorf("role %s: granted %q, want %q", c.role, got, c.want)
		}
		wantCatalog := 401
		if strings.Contains(c.want, cat) {
			wantCatalog = 200
		}
		if st := e.get(t, "/v2/_catalog", tok); st != wantCatalog {
			t.Errorf("role %s: catalog %d, want %d", c.role, st, wantCatalog)
		}
	}
	// The default service principal (Owner of the default subscription).
	if got, _ := e.access(t, identity.DefaultClientID, identity.DefaultClientSecret, "registry:catalog:*"); got != cat {
		t.Fatalf("default principal: %q", got)
	}

	// Revocation: a pull token stops working once the role is gone.
	p := mk("puller", rbac.AcrPull)
	_, tok := e.access(t, p.clientID, p.secret, "registry:catalog:*")
	if st := e.get(t, "/v2/_catalog", tok); st != 200 {
		t.Fatalf("catalog with AcrPull: %d", st)
	}
	for _, a := range e.roles.Of(p.oid) {
		if _, err := e.roles.Delete(ctx, a.Scope, a.Name); err != nil {
			t.Fatal(err)
		}
	}
	if st := e.get(t, "/v2/_catalog", tok); st != 401 {
		t.Fatalf("catalog after the role was removed: %d", st)
	}

	// The Entra exchange: an AcrPush principal's token.
	p = mk("pusher", rbac.AcrPush)
	aad, err := e.ids.IssueToken(ctx, p.clientID, identity.AudienceContainer, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"access_token"}, "service": {e.login}, "access_token": {aad}}
	resp, err := e.client.PostForm(e.url+"/oauth2/exchange", form)
	if err != nil {
		t.Fatal(err)
	}
	var ex struct {
		RefreshToken string `json:"refresh_token"`
	}
	json.NewDecoder(resp.Body).Decode(&ex)
	resp.Body.Close()
	form = url.Values{"grant_type": {"refresh_token"}, "service": {e.login}, "refresh_token": {ex.RefreshToken}, "scope": {"repository:app:pull,push,delete"}}
	resp, err = e.client.PostForm(e.url+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var at struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&at)
	resp.Body.Close()
	if got := grantOf(t, at.AccessToken); got != "repository:app:pull,push" {
		t.Fatalf("exchange as AcrPush: %q", got)
	}
}

// norm sorts the actions inside each entry and the entries.
func norm(s string) string {
	var out []string
	for _, f := range strings.Fields(s) {
		i := strings.LastIndex(f, ":")
		acts := strings.Split(f[i+1:], ",")
		sort.Strings(acts)
		out = append(out, f[:i+1]+strings.Join(acts, ","))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}
