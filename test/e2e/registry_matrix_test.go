package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	acr "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry/v3"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/berth-dev/berth/internal/testutil/testimage"
)

// TestRegistryAuthorizationMatrix sends every kind of registry request —
// pull (manifest, blob, tags), catalog, push (upload, manifest), delete
// (manifest, repository), metadata read and write — as each kind of
// caller: principals holding AcrPull, AcrPush or AcrDelete on the registry
// (berth sp create + armauthorization), a scope-map token allowed
// content/read and metadata/read on one repository, and an anonymous
// client of a registry with anonymous pull on. Each caller asks the token
// endpoint for exactly the scope the request needs, as docker does, and
// each answer is asserted: allowed (2xx) or refused (401/403).
func TestRegistryAuthorizationMatrix(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 5*time.Minute)
	poll := &runtime.PollUntilDoneOptions{Frequency: 200 * time.Millisecond}
	const rg = "rg-matrix"
	if _, err := s.groups.CreateOrUpdate(ctx, rg, armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	af := s.registries(t)
	regs := af.NewRegistriesClient()
	reg := createRegistry(ctx, t, regs, rg, "matrixreg", acr.Registry{Location: to.Ptr("westeurope"), SKU: &acr.SKU{Name: to.Ptr(acr.SKUNameStandard)},
		Properties: &acr.RegistryProperties{AdminUserEnabled: to.Ptr(true), AnonymousPullEnabled: to.Ptr(true)}})
	login := *reg.Properties.LoginServer
	creds, err := regs.ListCredentials(ctx, rg, "matrixreg", nil)
	if err != nil {
		t.Fatal(err)
	}
	admin := &authn.Basic{Username: *creds.Username, Password: *creds.Passwords[0].Value}
	img := testimage.Build(t)
	digests := map[string]string{}
	digests["app:v1"] = testimage.Push(t, img, login+"/app:v1", admin, b.client.Transport)
	digests["trash:v1"] = testimage.Push(t, img, login+"/trash:v1", admin, b.client.Transport)
	// A manifest of its own for each caller's delete attempt (deleting by
	// digest removes every tag of that manifest).
	for _, c := range []string{"AcrPull", "AcrPush", "AcrDelete", "token", "anonymous"} {
		other, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		digests["app:del-"+c] = testimage.Push(t, other, login+"/app:del-"+c, admin, b.client.Transport)
	}
	cfgDigest, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}

	// The callers.
	type caller struct{ name, user, pass string }
	var callers []caller
	for _, role := range []string{"AcrPull", "AcrPush", "AcrDelete"} {
		out, err := exec.CommandContext(ctx, binary(t), "sp", "create", "--name", "matrix-"+role, "--data-dir", b.dataDir).CombinedOutput()
		if err != nil {
			t.Fatalf("berth sp create: %v\n%s", err, out)
		}
		var sp struct{ AppID, Password string }
		if err := json.Unmarshal(out, &sp); err != nil {
			t.Fatal(err)
		}
		assignRole(ctx, t, s, *reg.ID, role, spObjectID(ctx, t, sp.AppID, b))
		callers = append(callers, caller{role, sp.AppID, sp.Password})
	}
	mp, err := af.NewScopeMapsClient().BeginCreate(ctx, rg, "matrixreg", "appread", acr.ScopeMap{Properties: &acr.ScopeMapProperties{
		Actions: []*string{to.Ptr("repositories/app/content/read"), to.Ptr("repositories/app/metadata/read")}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sm, err := mp.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := af.NewTokensClient().BeginCreate(ctx, rg, "matrixreg", "apptoken", acr.Token{Properties: &acr.TokenProperties{ScopeMapID: sm.ID}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tp.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	gp, err := regs.BeginGenerateCredentials(ctx, rg, "matrixreg", acr.GenerateCredentialsParameters{TokenID: tok.ID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := gp.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	callers = append(callers, caller{"token", *gen.Username, *gen.Passwords[0].Value}, caller{"anonymous", "", ""})

	// The requests, each with the scope docker would ask for.
	type request struct {
		name, method, path, scope string
		body                      []byte
		ctype                     string
		allowed                   map[string]bool // by caller name
	}
	all := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	pullers := all("AcrPull", "AcrPush", "token", "anonymous")
	reqs := func(c string) []request {
		return []request{
			{name: "pull manifest", method: "GET", path: "/v2/app/manifests/v1", scope: "repository:app:pull", allowed: pullers},
			{name: "head manifest", method: "HEAD", path: "/v2/app/manifests/v1", scope: "repository:app:pull", allowed: pullers},
			{name: "pull blob", method: "GET", path: "/v2/app/blobs/" + cfgDigest.String(), scope: "repository:app:pull", allowed: pullers},
			{name: "list tags", method: "GET", path: "/v2/app/tags/list", scope: "repository:app:pull", allowed: pullers},
			{name: "catalog", method: "GET", path: "/v2/_catalog", scope: "registry:catalog:*", allowed: all("AcrPull", "AcrPush")},
			{name: "start upload", method: "POST", path: "/v2/app/blobs/uploads/", scope: "repository:app:pull,push", allowed: all("AcrPush")},
			{name: "push manifest", method: "PUT", path: "/v2/app/manifests/pushed-" + c, scope: "repository:app:pull,push",
				body: manifest, ctype: "application/vnd.oci.image.manifest.v1+json", allowed: all("AcrPush")},
			{name: "metadata read", method: "GET", path: "/acr/v1/app/_tags", scope: "repository:app:metadata_read", allowed: all("AcrPull", "AcrPush", "token", "anonymous")},
			{name: "metadata write", method: "PATCH", path: "/acr/v1/app/_tags/v1", scope: "repository:app:metadata_write",
				body: []byte(`{"writeEnabled":true}`), ctype: "application/json", allowed: all("AcrPush")},
			{name: "delete manifest", method: "DELETE", path: "/v2/app/manifests/" + digests["app:del-"+c], scope: "repository:app:delete", allowed: all("AcrDelete")},
		}
	}
	do := func(c caller, r request) (int, string) {
		q := url.Values{"service": {login}, "scope": {r.scope}}
		treq, _ := http.NewRequest("GET", "https://"+login+"/oauth2/token?"+q.Encode(), nil)
		if c.user != "" {
			treq.SetBasicAuth(c.user, c.pass)
		}
		tresp, err := b.client.Do(treq)
		if err != nil {
			t.Fatal(err)
		}
		var tk struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(tresp.Body).Decode(&tk)
		tresp.Body.Close()
		if tresp.StatusCode != 200 {
			return tresp.StatusCode, "token endpoint"
		}
		req, _ := http.NewRequest(r.method, "https://"+login+r.path, bytes.NewReader(r.body))
		req.Header.Set("Authorization", "Bearer "+tk.AccessToken)
		if r.ctype != "" {
			req.Header.Set("Content-Type", r.ctype)
		}
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	n := 0
	for _, c := range callers {
		for _, r := range reqs(c.name) {
			n++
			st, body := do(c, r)
			ok := st/100 == 2
			refused := st == 401 || st == 403
			switch {
			case r.allowed[c.name] && !ok:
				t.Errorf("%s, %s: %d %s (want allowed)", c.name, r.name, st, body)
			case !r.allowed[c.name] && !refused:
				t.Errorf("%s, %s: %d %s (want 401/403)", c.name, r.name, st, body)
			}
		}
	}
	// Deleting a repository: AcrDelete only (last: it is gone after).
	for _, c := range callers {
		n++
		st, body := do(c, request{method: "DELETE", path: "/acr/v1/trash", scope: "repository:trash:delete"})
		if want := c.name == "AcrDelete"; want != (st/100 == 2) || (!want && st != 401 && st != 403) {
			t.Errorf("%s, delete repository: %d %s", c.name, st, body)
		}
	}
	t.Logf("%d requests over %d callers", n, len(callers))
}
