package imds

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/clock"
)

type fakeGroups map[string]GroupIdentities

func (f fakeGroups) Identities(_ context.Context, id string) (GroupIdentities, error) {
	return f[id], nil
}

type fakeTokens struct {
	clk    *clock.Fake
	issued int
	dead   map[string]bool
}

func (f *fakeTokens) Issue(_ context.Context, clientID, resource string) (Token, error) {
	if !strings.HasPrefix(resource, "https://management") {
		return Token{}, ErrUnknownResource
	}
	f.issued++
	now := f.clk.Now()
	return Token{AccessToken: "tok-" + clientID, NotBefore: now, Expires: now.Add(time.Hour)}, nil
}

func (f *fakeTokens) Live(oid string) bool { return !f.dead[oid] }

// get sends one request on a connection handed over as coming from group.
func get(t *testing.T, s *Server, group, query string, meta bool) (int, map[string]string) {
	t.Helper()
	client, server := net.Pipe()
	s.Serve(group, server)
	req, _ := http.NewRequest(http.MethodGet, "http://169.254.169.254"+TokenPath+query, nil)
	if meta {
		req.Header.Set("Metadata", "true")
	}
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return client, nil }}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestTokens(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	toks := &fakeTokens{clk: clk, dead: map[string]bool{}}
	sys := &Identity{ClientID: "sys-app", ObjectID: "sys-oid"}
	u1 := Identity{ClientID: "u1-app", ObjectID: "u1-oid", ResourceID: "/sub/x/userAssignedIdentities/u1"}
	u2 := Identity{ClientID: "u2-app", ObjectID: "u2-oid", ResourceID: "/sub/x/userAssignedIdentities/u2"}
	s := &Server{Groups: fakeGroups{
		"both": {System: sys, User: []Identity{u1}}, "one": {User: []Identity{u1}}, "two": {User: []Identity{u1, u2}},
	}, Tokens: toks, Clock: clk, Tenant: "tenant"}
	defer s.Close()
	const q = "?api-version=2018-02-01&resource=https://management.azure.com/"

	for _, tc := range []struct {
		group, query string
		meta         bool
		status       int
		field, want  string
	}{
		{"both", q, false, 400, "error_description", "Required metadata header not specified"},
		{"both", "?resource=https://management.azure.com/", true, 400, "error", "invalid_request"},
		{"both", "?api-version=2018-02-01", true, 400, "error_description", "Required audience parameter not specified"},
		{"both", q, true, 200, "client_id", "sys-app"},
		{"both", q + "&client_id=U1-APP", true, 200, "client_id", "u1-app"},
		{"both", q + "&object_id=u1-oid", true, 200, "client_id", "u1-app"},
		{"both", q + "&msi_res_id=/SUB/x/userAssignedIdentities/u1", true, 200, "client_id", "u1-app"},
		{"both", q + "&mi_res_id=/sub/x/userAssignedIdentities/u1", true, 200, "client_id", "u1-app"},
		{"both", q + "&client_id=u2-app", true, 400, "error_description", "Identity not found"},
		{"one", q, true, 200, "client_id", "u1-app"},
		{"two", q, true, 400, "error_description", "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"},
		{"two", q + "&client_id=u2-app", true, 200, "access_token", "tok-u2-app"},
		{"none", q, true, 400, "error_description", "Identity not found"},
		{"both", "?api-version=2018-02-01&resource=https://vault.azure.net", true, 400, "error", "invalid_resource"},
	} {
		status, body := get(t, s, tc.group, tc.query, tc.meta)
		if status != tc.status || body[tc.field] != tc.want {
			t.Errorf("%s %s meta=%v: %d %v, want %d %s=%q", tc.group, tc.query, tc.meta, status, body, tc.status, tc.field, tc.want)
		}
	}
	// The answer's shape: every value a string.
	_, body := get(t, s, "both", q, true)
	for _, k := range []string{"access_token", "client_id", "expires_in", "expires_on", "ext_expires_in", "not_before", "resource", "token_type"} {
		if body[k] == "" {
			t.Errorf("token answer lacks %s: %v", k, body)
		}
	}
	if body["expires_in"] != "3600" || body["resource"] != "https://management.azure.com/" || body["token_type"] != "Bearer" {
		t.Errorf("token answer %v", body)
	}

	// Cached per identity and resource until five minutes before expiry,
	// and not for a principal that is gone.
	n := toks.issued
	get(t, s, "both", q, true)
	if toks.issued != n {
		t.Fatalf("cached token not used: %d issues", toks.issued-n)
	}
	clk.Advance(56 * time.Minute)
	get(t, s, "both", q, true)
	if toks.issued != n+1 {
		t.Fatalf("token near expiry not renewed")
	}
	toks.dead["sys-oid"] = true
	get(t, s, "both", q, true)
	if toks.issued != n+2 {
		t.Fatalf("token of a deleted principal served from the cache")
	}
}
