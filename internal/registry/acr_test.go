package registry

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
)

var (
	acrSpecOnce sync.Once
	acrSpec     openapi3.Schemas
	acrSpecErr  error
)

// acrSchemas returns the definitions of the published ACR data-plane spec
// (2021-07-01), copied into testdata.
func acrSchemas(t *testing.T) openapi3.Schemas {
	t.Helper()
	acrSpecOnce.Do(func() {
		raw, err := os.ReadFile(filepath.Join("testdata", "containerregistry-2021-07-01.json"))
		if err != nil {
			acrSpecErr = err
			return
		}
		var doc2 openapi2.T
		if acrSpecErr = json.Unmarshal(raw, &doc2); acrSpecErr != nil {
			return
		}
		doc3, err := openapi2conv.ToV3(&doc2)
		if err != nil {
			acrSpecErr = err
			return
		}
		acrSpec = doc3.Components.Schemas
	})
	if acrSpecErr != nil {
		t.Fatal(acrSpecErr)
	}
	return acrSpec
}

// validate checks a response body against a definition of the spec.
func validate(t *testing.T, schema string, body []byte) {
	t.Helper()
	ref := acrSchemas(t)[schema]
	if ref == nil {
		t.Fatalf("spec has no %s", schema)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v: %s", schema, err, body)
	}
	if err := ref.Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
		t.Errorf("%s does not validate: %v\n%s", schema, err, body)
	}
}

func TestACRResponsesValidateAgainstSpec(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAAD)
	img := e.pushImage("a/b", "v1", "1")
	e.pushImage("a/b", "v2", "2")
	index := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` +
		img.digest.String() + `","size":` + itoa(len(img.manifest)) + `,"platform":{"architecture":"arm64","os":"linux"}}]}`)
	e.do(request{method: "PUT", path: "/v2/a/b/manifests/multi", body: index, auth: "basic",
		header: http.Header{"Content-Type": {mediaTypeOCIIndex}}}).want(t, 201, "")

	for _, tc := range []struct {
		method, path, body, schema string
		status                     int
	}{
		{"GET", "/acr/v1/_catalog", "", "Repositories", 200},
		{"GET", "/acr/v1/a%2Fb", "", "RepositoryAttributes", 200},
		{"PATCH", "/acr/v1/a%2Fb", `{"listEnabled":true}`, "RepositoryAttributes", 200},
		{"GET", "/acr/v1/a%2Fb/_tags", "", "TagList", 200},
		{"GET", "/acr/v1/a%2Fb/_tags/v1", "", "TagAttributes", 200},
		{"PATCH", "/acr/v1/a%2Fb/_tags/v1", `{"readEnabled":true}`, "TagAttributes", 200},
		{"GET", "/acr/v1/a%2Fb/_manifests", "", "AcrManifests", 200},
		{"GET", "/acr/v1/a%2Fb/_manifests/" + img.digest.String(), "", "ManifestAttributes", 200},
		{"GET", "/acr/v1/a%2Fb/_manifests/multi", "", "ManifestAttributes", 200},
		{"PATCH", "/acr/v1/a%2Fb/_manifests/" + img.digest.String(), `{"deleteEnabled":true}`, "ManifestAttributes", 200},
		{"GET", "/acr/v1/nope", "", "AcrErrors", 404},
		{"GET", "/acr/v1/a%2Fb/_tags/nope", "", "AcrErrors", 404},
		{"DELETE", "/acr/v1/a%2Fb", "", "DeletedRepository", 202},
	} {
		r := e.do(request{method: tc.method, path: tc.path, body: []byte(tc.body), auth: "basic"}).want(t, tc.status, "")
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, ct)
		}
		validate(t, tc.schema, r.body)
	}
	r := e.postForm("/oauth2/exchange", url.Values{"grant_type": {"access_token"}, "service": {e.host}, "access_token": {testAADToken}}).want(t, 200, "")
	validate(t, "RefreshToken", r.body)
	var rt exchangeResponseWire
	_ = json.Unmarshal(r.body, &rt)
	r = e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "service": {e.host}, "refresh_token": {rt.RefreshToken}, "scope": {"registry:catalog:*"}}).want(t, 200, "")
	validate(t, "AccessToken", r.body)
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func (e *env) postForm(path string, form url.Values) response {
	e.t.Helper()
	return e.do(request{method: "POST", path: path, body: []byte(form.Encode()),
		header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}})
}

func TestACRListings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var digests []string
	for i, tag := range []string{"c", "a", "d", "b"} {
		e.clock.Advance(time.Minute)
		img := e.pushImage("ns/app", tag, tag)
		digests = append(digests, img.digest.String())
		_ = i
	}
	for _, repo := range []string{"zeta", "alpha", "ns/app2"} {
		e.pushImage(repo, "v1", repo)
	}
	type tagList struct {
		Tags []struct{ Name, Digest string }
	}
	tags := func(query string) ([]string, string) {
		r := e.do(request{method: "GET", path: "/acr/v1/ns%2Fapp/_tags" + query, auth: "basic"}).want(t, 200, "")
		var l tagList
		if err := json.Unmarshal(r.body, &l); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tg := range l.Tags {
			names = append(names, tg.Name)
		}
		return names, r.Header.Get("Link")
	}
	for _, tc := range []struct{ query, want, link string }{
		{"", "a,b,c,d", ""},
		{"?n=2", "a,b", `</acr/v1/ns/app/_tags?last=b&n=2&orderby=>; rel="next"`},
		{"?n=2&last=b", "c,d", ""},
		{"?orderby=timedesc", "b,d,a,c", ""},
		{"?orderby=timeasc&n=3", "c,a,d", `</acr/v1/ns/app/_tags?last=d&n=3&orderby=timeasc>; rel="next"`},
		{"?orderby=timeasc&n=3&last=d", "b", ""},
		{"?digest=" + digests[2], "d", ""},
	} {
		got, link := tags(tc.query)
		if strings.Join(got, ",") != tc.want || link != tc.link {
			t.Errorf("_tags%s = %v link %q; want %s link %q", tc.query, got, link, tc.want, tc.link)
		}
	}
	e.do(request{method: "GET", path: "/acr/v1/ns%2Fapp/_tags?orderby=sideways", auth: "basic"}).want(t, 400, "UNSUPPORTED")
	e.do(request{method: "GET", path: "/acr/v1/ns%2Fapp/_tags?n=-1", auth: "basic"}).want(t, 400, "PAGINATION_NUMBER_INVALID")

	// Manifests, newest first, with their tags.
	r := e.do(request{method: "GET", path: "/acr/v1/ns%2Fapp/_manifests?orderby=timedesc&n=3", auth: "basic"}).want(t, 200, "")
	var ml struct {
		Manifests []struct {
			Digest string
			Tags   []string
		}
	}
	_ = json.Unmarshal(r.body, &ml)
	if len(ml.Manifests) != 3 || ml.Manifests[0].Digest != digests[3] || !slices.Equal(ml.Manifests[0].Tags, []string{"b"}) {
		t.Errorf("_manifests %s", r.body)
	}
	if l := r.Header.Get("Link"); l != `</acr/v1/ns/app/_manifests?last=`+url.QueryEscape(digests[1])+`&n=3&orderby=timedesc>; rel="next"` {
		t.Errorf("_manifests Link %q", l)
	}

	// Catalog, paged, in both APIs.
	for _, path := range []string{"/acr/v1/_catalog", "/v2/_catalog"} {
		var all []string
		next := path + "?n=2"
		for next != "" {
			r := e.do(request{method: "GET", path: next, auth: "basic"}).want(t, 200, "")
			var c catalogWire
			_ = json.Unmarshal(r.body, &c)
			all = append(all, c.Repositories...)
			next = strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("Link"), "<"), `>; rel="next"`)
			if next != "" && !strings.HasPrefix(next, path+"?") {
				t.Errorf("%s: next page %q is in another API", path, next)
			}
		}
		if strings.Join(all, ",") != "alpha,ns/app,ns/app2,zeta" {
			t.Errorf("%s: %v", path, all)
		}
	}
	// listEnabled=false hides.
	e.do(request{method: "PATCH", path: "/acr/v1/zeta", body: []byte(`{"listEnabled":false}`), auth: "basic"}).want(t, 200, "")
	e.do(request{method: "PATCH", path: "/acr/v1/ns/app/_tags/a", body: []byte(`{"listEnabled":false}`), auth: "basic"}).want(t, 200, "")
	e.do(request{method: "PATCH", path: "/acr/v1/ns/app/_manifests/" + digests[0], body: []byte(`{"listEnabled":false}`), auth: "basic"}).want(t, 200, "")
	var c catalogWire
	_ = json.Unmarshal(e.do(request{method: "GET", path: "/v2/_catalog", auth: "basic"}).want(t, 200, "").body, &c)
	if slices.Contains(c.Repositories, "zeta") {
		t.Errorf("hidden repository listed: %v", c.Repositories)
	}
	if got, _ := tags(""); strings.Join(got, ",") != "b,c,d" {
		t.Errorf("hidden tag listed: %v", got)
	}
	var tl tagListWire
	_ = json.Unmarshal(e.do(request{method: "GET", path: "/v2/ns/app/tags/list", auth: "basic"}).want(t, 200, "").body, &tl)
	if strings.Join(tl.Tags, ",") != "b,c,d" {
		t.Errorf("hidden tag listed in /v2: %v", tl.Tags)
	}
	_ = json.Unmarshal(e.do(request{method: "GET", path: "/acr/v1/ns/app/_manifests", auth: "basic"}).want(t, 200, "").body, &ml)
	if len(ml.Manifests) != 3 {
		t.Errorf("hidden manifest listed: %+v", ml)
	}
	// But still readable.
	e.do(request{method: "GET", path: "/v2/ns/app/manifests/a", auth: "basic"}).want(t, 200, "")

	// Errors.
	e.do(request{method: "GET", path: "/acr/v1/none", auth: "basic"}).want(t, 404, "NAME_UNKNOWN")
	e.do(request{method: "GET", path: "/acr/v1/none/_tags", auth: "basic"}).want(t, 404, "NAME_UNKNOWN")
	e.do(request{method: "GET", path: "/acr/v1/ns/app/_tags/none", auth: "basic"}).want(t, 404, "TAG_UNKNOWN")
	e.do(request{method: "DELETE", path: "/acr/v1/ns/app/_tags/none", auth: "basic"}).want(t, 404, "TAG_UNKNOWN")
	e.do(request{method: "GET", path: "/acr/v1/ns/app/_manifests/sha256:" + strings.Repeat("0", 64), auth: "basic"}).want(t, 404, "MANIFEST_UNKNOWN")
	e.do(request{method: "GET", path: "/acr/v1/ns/app/_manifests/sha256:zz", auth: "basic"}).want(t, 400, "DIGEST_INVALID")
	e.do(request{method: "GET", path: "/acr/v1/Bad_Name", auth: "basic"}).want(t, 400, "NAME_INVALID")
	e.do(request{method: "PATCH", path: "/acr/v1/ns/app", body: []byte(`{"listEnabled":"yes"}`), auth: "basic"}).want(t, 400, "UNSUPPORTED")
	e.do(request{method: "PUT", path: "/acr/v1/ns/app", auth: "basic"}).want(t, 405, "UNSUPPORTED")
}

func TestACRScopes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pushImage("app", "v1", "1")
	realm := `Bearer realm="https://` + e.host + `/oauth2/token",service="` + e.host + `"`
	for _, tc := range []struct{ method, path, scope string }{
		{"GET", "/acr/v1/_catalog", "registry:catalog:*"},
		{"GET", "/v2/_catalog", "registry:catalog:*"},
		{"GET", "/acr/v1/app", "repository:app:metadata_read"},
		{"PATCH", "/acr/v1/app", "repository:app:metadata_write"},
		{"DELETE", "/acr/v1/app", "repository:app:delete"},
		{"GET", "/acr/v1/app/_tags", "repository:app:metadata_read"},
		{"DELETE", "/acr/v1/app/_tags/v1", "repository:app:delete"},
		{"PATCH", "/acr/v1/app/_manifests/sha256:" + strings.Repeat("0", 64), "repository:app:metadata_write"},
		{"DELETE", "/v2/app/manifests/v1", "repository:app:delete"},
		{"DELETE", "/v2/app/blobs/sha256:" + strings.Repeat("0", 64), "repository:app:delete"},
		{"GET", "/v2/app/referrers/sha256:" + strings.Repeat("0", 64), "repository:app:pull"},
	} {
		r := e.do(request{method: tc.method, path: tc.path}).want(t, 401, "UNAUTHORIZED")
		if got, want := r.Header.Get("WWW-Authenticate"), realm+`,scope="`+tc.scope+`"`; got != want {
			t.Errorf("%s %s: challenge %s, want %s", tc.method, tc.path, got, want)
		}
		// A token for the wrong scope is insufficient; one for the scope works.
		other := e.token("repository:other:pull")
		r = e.do(request{method: tc.method, path: tc.path, auth: bearer(other)}).want(t, 401, "UNAUTHORIZED")
		if !strings.HasSuffix(r.Header.Get("WWW-Authenticate"), `,error="insufficient_scope"`) {
			t.Errorf("%s %s: challenge %s", tc.method, tc.path, r.Header.Get("WWW-Authenticate"))
		}
		r = e.do(request{method: tc.method, path: tc.path, auth: bearer(e.token(tc.scope))})
		if r.StatusCode == 401 || r.StatusCode == 403 {
			t.Errorf("%s %s with %s: %d %s", tc.method, tc.path, tc.scope, r.StatusCode, r.body)
		}
	}
	// A principal limited to pull and metadata_read gets no catalog and no
	// metadata_write.
	lim := newEnv(t, func(c *Config) {
		c.Auth = StaticAuth{Username: testUser, Password: testPassword, Principal: Principal{Actions: []string{ActionPull, ActionMetadataRead}}}
	})
	tok := lim.token("registry:catalog:*", "repository:app:metadata_read,metadata_write")
	access, _ := json.Marshal(decodeClaims(t, tok)["access"])
	if want := `[{"actions":["metadata_read"],"name":"app","type":"repository"}]`; string(access) != want {
		t.Errorf("limited access %s, want %s", access, want)
	}
}
