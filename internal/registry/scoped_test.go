package registry

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// scopedEnv is a registry whose one user is scoped, as an ACR token on a
// scope map is: pull on app, push and pull below samples/, metadata reads
// everywhere.
func scopedEnv(t *testing.T) *env {
	return newEnv(t, func(c *Config) {
		c.Auth = StaticAuth{Username: testUser, Password: testPassword, Principal: Principal{ClientID: "mytoken", Scoped: true,
			Repositories: []RepositoryActions{
				{Repository: "app", Actions: []string{ActionPull}},
				{Repository: "samples/*", Actions: []string{ActionPush, ActionPull}},
				{Repository: "*", Actions: []string{ActionMetadataRead}},
			}}}
	})
}

func TestScopedPrincipalIntersection(t *testing.T) {
	t.Parallel()
	e := scopedEnv(t)
	tok := e.token("repository:app:push,pull", "repository:other:pull", "registry:catalog:*",
		"repository:samples/x/y:push,pull,delete", "repository:samples:pull", "repository:zzz:metadata_read,metadata_write", "repository:app:*")
	access, _ := json.Marshal(decodeClaims(t, tok)["access"])
	want := `[{"actions":["pull"],"name":"app","type":"repository"},{"actions":["push","pull"],"name":"samples/x/y","type":"repository"},` +
		`{"actions":["metadata_read"],"name":"zzz","type":"repository"}]`
	if string(access) != want {
		t.Fatalf("access %s\nwant %s", access, want)
	}
	// A refresh token carries the rules; tokens from it grant the same.
	r := e.postToken(url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword},
		"service": {e.host}, "access_type": {"offline"}}).want(t, 200, "")
	var tr tokenResponseWire
	_ = json.Unmarshal(r.body, &tr)
	c := decodeClaims(t, tr.RefreshToken)
	if c["scoped"] != true || c["repositories"] == nil {
		t.Fatalf("refresh token claims %v", c)
	}
	r = e.postToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "service": {e.host},
		"scope": {"repository:app:push,pull", "repository:samples/a:push", "registry:catalog:*", "repository:other:pull"}}).want(t, 200, "")
	_ = json.Unmarshal(r.body, &tr)
	access, _ = json.Marshal(decodeClaims(t, tr.AccessToken)["access"])
	if want := `[{"actions":["pull"],"name":"app","type":"repository"},{"actions":["push"],"name":"samples/a","type":"repository"}]`; string(access) != want {
		t.Fatalf("access from refresh token %s\nwant %s", access, want)
	}
}

func TestScopedPrincipalRequests(t *testing.T) {
	t.Parallel()
	e := scopedEnv(t)
	// pushImage logs in as the scoped user, who may push below samples/.
	e.pushImage("samples/one", "v1", "1")
	e.do(request{method: "GET", path: "/v2/samples/one/manifests/v1", auth: "basic"}).want(t, 200, "")
	e.do(request{method: "GET", path: "/v2/samples/one/tags/list", auth: "basic"}).want(t, 200, "")
	// No delete on samples/.
	r := e.do(request{method: "DELETE", path: "/v2/samples/one/manifests/v1", auth: "basic"}).want(t, 401, "UNAUTHORIZED")
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("challenge %q", r.Header.Get("WWW-Authenticate"))
	}
	// No push to app, nothing on other, no catalog.
	e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: "basic"}).want(t, 401, "UNAUTHORIZED")
	e.do(request{method: "GET", path: "/v2/other/manifests/v1", auth: "basic"}).want(t, 401, "UNAUTHORIZED")
	e.do(request{method: "GET", path: "/v2/_catalog", auth: "basic"}).want(t, 401, "UNAUTHORIZED")
	e.do(request{method: "GET", path: "/acr/v1/_catalog", auth: "basic"}).want(t, 401, "UNAUTHORIZED")
	// Metadata reads everywhere (the "*" rule).
	e.do(request{method: "GET", path: "/acr/v1/samples%2Fone/_tags", auth: "basic"}).want(t, 200, "")
}

func TestRepositoryRuleMatching(t *testing.T) {
	p := Principal{Scoped: true, Repositories: []RepositoryActions{
		{Repository: "sample/*", Actions: []string{ActionPull}},
		{Repository: "sample/teama/*", Actions: []string{ActionPush}},
		{Repository: "sample/teama/projectb", Actions: []string{ActionDelete}},
	}}
	cases := []struct {
		repo, action string
		want         bool
	}{
		{"sample/teama/projectb", ActionPull, true}, {"sample/teama/projectb", ActionPush, true}, {"sample/teama/projectb", ActionDelete, true},
		{"sample/teama/projectc", ActionPull, true}, {"sample/teama/projectc", ActionPush, true}, {"sample/teama/projectc", ActionDelete, false},
		{"sample", ActionPull, false}, {"samples/x", ActionPull, false}, {"sample/x", ActionPush, false},
		{"sample/teama/projectb", ActionAll, false},
	}
	for _, c := range cases {
		if got := p.mayOn(c.repo, c.action); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.repo, c.action, got, c.want)
		}
	}
	if p.may(ActionPull) {
		t.Error("a scoped principal may pull registry-wide")
	}
	all := Principal{Scoped: true, Repositories: []RepositoryActions{{Repository: "*", Actions: repositoryActions}}}
	if !all.mayOn("x/y", ActionAll) || (grant{principal: all}).permits("registry", "catalog", ActionAll) {
		t.Error("admin-like scoped principal: * on repositories yes, catalog no")
	}
}
