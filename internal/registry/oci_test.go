package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	blobfs "github.com/berth-dev/berth/internal/blob/fs"
	"github.com/berth-dev/berth/internal/store"
	"github.com/berth-dev/berth/internal/store/bolt"
)

func TestAttributesEnforced(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v1 := e.pushImage("app", "v1", "1")
	v2 := e.pushImage("app", "v2", "2")
	patch := func(path, body string) {
		t.Helper()
		e.do(request{method: "PATCH", path: "/acr/v1/app" + path, body: []byte(body), auth: "basic"}).want(t, 200, "")
	}
	put := func(tag string, img image) response {
		return e.do(request{method: "PUT", path: "/v2/app/manifests/" + tag, body: img.manifest, auth: "basic",
			header: http.Header{"Content-Type": {mediaTypeOCIManifest}}})
	}

	// Tag write-disabled: cannot be moved, can be re-pushed as it is.
	patch("/_tags/v1", `{"writeEnabled":false}`)
	put("v1", v2).want(t, 403, "DENIED")
	put("v1", v1).want(t, 201, "")
	// ... nor deleted (locked), by either API.
	e.do(request{method: "DELETE", path: "/v2/app/manifests/v1", auth: "basic"}).want(t, 405, "UNSUPPORTED")
	e.do(request{method: "DELETE", path: "/acr/v1/app/_tags/v1", auth: "basic"}).want(t, 405, "UNSUPPORTED")
	patch("/_tags/v1", `{"writeEnabled":true}`)

	// Manifest write-disabled: its tags cannot be moved away, it cannot be deleted.
	patch("/_manifests/"+v1.digest.String(), `{"writeEnabled":false}`)
	put("v1", v2).want(t, 403, "DENIED")
	e.do(request{method: "DELETE", path: "/v2/app/manifests/" + v1.digest.String(), auth: "basic"}).want(t, 405, "UNSUPPORTED")
	patch("/_manifests/"+v1.digest.String(), `{"writeEnabled":true,"deleteEnabled":false}`)
	e.do(request{method: "DELETE", path: "/v2/app/manifests/" + v1.digest.String(), auth: "basic"}).want(t, 405, "UNSUPPORTED")
	patch("/_manifests/"+v1.digest.String(), `{"deleteEnabled":true}`)

	// Read-disabled: no pulls, by tag, by digest, of the repository.
	patch("/_tags/v2", `{"readEnabled":false}`)
	e.do(request{method: "GET", path: "/v2/app/manifests/v2", auth: "basic"}).want(t, 403, "DENIED")
	e.do(request{method: "GET", path: "/v2/app/manifests/" + v2.digest.String(), auth: "basic"}).want(t, 200, "")
	patch("/_tags/v2", `{"readEnabled":true}`)
	patch("/_manifests/"+v2.digest.String(), `{"readEnabled":false}`)
	e.do(request{method: "HEAD", path: "/v2/app/manifests/v2", auth: "basic"}).want(t, 403, "")
	patch("/_manifests/"+v2.digest.String(), `{"readEnabled":true}`)
	patch("", `{"readEnabled":false}`)
	e.do(request{method: "GET", path: "/v2/app/manifests/v1", auth: "basic"}).want(t, 403, "DENIED")
	e.do(request{method: "GET", path: "/v2/app/blobs/" + digest.FromBytes(v1.layer).String(), auth: "basic"}).want(t, 403, "DENIED")
	patch("", `{"readEnabled":true}`)

	// Repository write-disabled: no pushes of any kind, no deletes.
	patch("", `{"writeEnabled":false}`)
	put("v3", v1).want(t, 403, "DENIED")
	e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: "basic"}).want(t, 403, "DENIED")
	e.do(request{method: "DELETE", path: "/v2/app/manifests/v2", auth: "basic"}).want(t, 405, "UNSUPPORTED")
	e.do(request{method: "DELETE", path: "/acr/v1/app", auth: "basic"}).want(t, 405, "UNSUPPORTED")
	patch("", `{"writeEnabled":true,"deleteEnabled":false}`)
	put("v3", v1).want(t, 201, "")
	e.do(request{method: "DELETE", path: "/v2/app/blobs/" + digest.FromBytes(v1.layer).String(), auth: "basic"}).want(t, 405, "UNSUPPORTED")
	e.do(request{method: "DELETE", path: "/acr/v1/app", auth: "basic"}).want(t, 405, "UNSUPPORTED")
	patch("", `{"deleteEnabled":true}`)
	// Nothing changed by the refusals.
	var tl tagListWire
	_ = json.Unmarshal(e.do(request{method: "GET", path: "/v2/app/tags/list", auth: "basic"}).want(t, 200, "").body, &tl)
	if strings.Join(tl.Tags, ",") != "v1,v2,v3" {
		t.Errorf("tags %v", tl.Tags)
	}
	r := e.do(request{method: "GET", path: "/v2/app/manifests/v1", auth: "basic"}).want(t, 200, "")
	if r.Header.Get("Docker-Content-Digest") != v1.digest.String() {
		t.Errorf("v1 moved to %s", r.Header.Get("Docker-Content-Digest"))
	}
	e.do(request{method: "DELETE", path: "/acr/v1/app", auth: "basic"}).want(t, 202, "")
}

func TestAnonymousPull(t *testing.T) {
	t.Parallel()
	on := false
	e := newEnv(t, func(c *Config) { c.AnonymousPull = func() bool { return on } })
	img := e.pushImage("app", "v1", "1")
	e.do(request{method: "GET", path: "/v2/app/manifests/v1"}).want(t, 401, "UNAUTHORIZED")
	e.do(request{method: "GET", path: "/oauth2/token?scope=repository:app:pull&service=" + e.host}).want(t, 401, "UNAUTHORIZED")
	e.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "refresh_token": {""}, "service": {e.host}, "scope": {"repository:app:pull"}}).want(t, 401, "UNAUTHORIZED")

	on = true
	// Directly, and through tokens (GET without Basic; POST password grant
	// with an empty refresh_token, as the SDKs' anonymous clients send).
	e.do(request{method: "GET", path: "/v2/app/manifests/v1"}).want(t, 200, "")
	e.do(request{method: "GET", path: "/acr/v1/app/_tags"}).want(t, 200, "")
	e.do(request{method: "GET", path: "/v2/"}).want(t, 401, "UNAUTHORIZED") // clients learn the realm
	e.do(request{method: "POST", path: "/v2/app/blobs/uploads/"}).want(t, 401, "UNAUTHORIZED")
	e.do(request{method: "GET", path: "/v2/_catalog"}).want(t, 401, "UNAUTHORIZED")
	var tr tokenResponseWire
	r := e.do(request{method: "GET", path: "/oauth2/token?scope=repository:app:pull,push&service=" + e.host}).want(t, 200, "")
	_ = json.Unmarshal(r.body, &tr)
	access, _ := json.Marshal(decodeClaims(t, tr.Token)["access"])
	if string(access) != `[{"actions":["pull"],"name":"app","type":"repository"}]` {
		t.Errorf("anonymous access %s", access)
	}
	e.do(request{method: "GET", path: "/v2/app/blobs/" + digest.FromBytes(img.layer).String(), auth: bearer(tr.Token)}).want(t, 200, "")
	e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: bearer(tr.Token)}).want(t, 401, "UNAUTHORIZED")
	r = e.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "refresh_token": {""}, "service": {e.host},
		"scope": {"repository:app:metadata_read", "registry:catalog:*"}}).want(t, 200, "")
	_ = json.Unmarshal(r.body, &tr)
	access, _ = json.Marshal(decodeClaims(t, tr.AccessToken)["access"])
	if string(access) != `[{"actions":["metadata_read"],"name":"app","type":"repository"}]` {
		t.Errorf("anonymous access %s", access)
	}
	if tr.RefreshToken != "" {
		t.Error("anonymous client got a refresh token")
	}
}

func TestExchange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAAD)
	e.pushImage("app", "v1", "1")
	form := url.Values{"grant_type": {"access_token"}, "service": {e.host}, "access_token": {testAADToken}, "tenant": {"t"}}
	r := e.postForm("/oauth2/exchange", form).want(t, 200, "")
	var rt exchangeResponseWire
	_ = json.Unmarshal(r.body, &rt)
	c := decodeClaims(t, rt.RefreshToken)
	if c["grant_type"] != "refresh_token" || c["aud"] != e.host || c["iss"] != "Azure Container Registry" {
		t.Errorf("refresh token claims %v", c)
	}
	r = e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "service": {e.host}, "refresh_token": {rt.RefreshToken},
		"scope": {"repository:app:pull"}}).want(t, 200, "")
	var tr tokenResponseWire
	_ = json.Unmarshal(r.body, &tr)
	e.do(request{method: "GET", path: "/v2/app/manifests/v1", auth: bearer(tr.AccessToken)}).want(t, 200, "")

	bad := func(mod func(url.Values), status int, code string) {
		t.Helper()
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		mod(f)
		e.postForm("/oauth2/exchange", f).want(t, status, code)
	}
	bad(func(f url.Values) { f.Set("access_token", "forged") }, 401, "UNAUTHORIZED")
	bad(func(f url.Values) { f.Del("access_token") }, 401, "UNAUTHORIZED")
	bad(func(f url.Values) { f.Set("grant_type", "refresh_token") }, 400, "UNSUPPORTED")
	bad(func(f url.Values) { f.Set("service", "elsewhere:1") }, 400, "UNSUPPORTED")
	e.do(request{method: "GET", path: "/oauth2/exchange"}).want(t, 405, "UNSUPPORTED")
}

func TestMountAndSharedContent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.pushBlob("src", []byte("shared layer"))
	// With from.
	r := e.do(request{method: "POST", path: "/v2/dst/blobs/uploads/?mount=" + d.String() + "&from=src", auth: "basic"}).want(t, 201, "")
	if r.Header.Get("Docker-Content-Digest") != d.String() || r.Header.Get("Location") != "/v2/dst/blobs/"+d.String() {
		t.Errorf("mount headers %v", r.Header)
	}
	e.do(request{method: "GET", path: "/v2/dst/blobs/" + d.String(), auth: "basic"}).want(t, 200, "")
	// Without from: automatic, within the registry.
	e.do(request{method: "POST", path: "/v2/third/blobs/uploads/?mount=" + d.String(), auth: "basic"}).want(t, 201, "")
	// From a repository that does not have it, or of an unknown blob: an upload session.
	unknown := digest.FromString("nowhere")
	e.do(request{method: "POST", path: "/v2/dst/blobs/uploads/?mount=" + d.String() + "&from=empty", auth: "basic"}).want(t, 202, "")
	e.do(request{method: "POST", path: "/v2/dst/blobs/uploads/?mount=" + unknown.String(), auth: "basic"}).want(t, 202, "")
	e.do(request{method: "POST", path: "/v2/dst/blobs/uploads/?mount=bad&from=src", auth: "basic"}).want(t, 400, "DIGEST_INVALID")
	// Deleting it from one repository leaves the others.
	e.do(request{method: "DELETE", path: "/v2/src/blobs/" + d.String(), auth: "basic"}).want(t, 202, "")
	e.do(request{method: "GET", path: "/v2/src/blobs/" + d.String(), auth: "basic"}).want(t, 404, "BLOB_UNKNOWN")
	e.do(request{method: "DELETE", path: "/v2/src/blobs/" + d.String(), auth: "basic"}).want(t, 404, "BLOB_UNKNOWN")
	e.do(request{method: "GET", path: "/v2/third/blobs/" + d.String(), auth: "basic"}).want(t, 200, "")
	// One copy of the content.
	n := 0
	_ = e.blobs.Walk(context.Background(), func(digest.Digest, int64) error { n++; return nil })
	if n != 1 {
		t.Errorf("%d blobs stored", n)
	}
}

func TestReferrersAndDeletes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	subject := e.pushImage("app", "v1", "1")
	empty := e.pushBlob("app", []byte("{}"))
	artifact := func(at, ann string) digest.Digest {
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":%q,`+
			`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[],`+
			`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d},"annotations":{"a":%q}}`,
			at, empty, subject.digest, len(subject.manifest), ann)
		d := digest.FromString(m)
		r := e.do(request{method: "PUT", path: "/v2/app/manifests/" + d.String(), body: []byte(m), auth: "basic",
			header: http.Header{"Content-Type": {mediaTypeOCIManifest}}}).want(t, 201, "")
		if r.Header.Get("OCI-Subject") != subject.digest.String() {
			t.Errorf("OCI-Subject %q", r.Header.Get("OCI-Subject"))
		}
		return d
	}
	sig := artifact("application/vnd.example.sig", "s")
	sbom := artifact("application/vnd.example.sbom", "b")
	refs := func(query string) (indexWire, http.Header) {
		r := e.do(request{method: "GET", path: "/v2/app/referrers/" + subject.digest.String() + query, auth: "basic"}).want(t, 200, "")
		if r.Header.Get("Content-Type") != mediaTypeOCIIndex {
			t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
		}
		var ix indexWire
		if err := json.Unmarshal(r.body, &ix); err != nil {
			t.Fatal(err)
		}
		return ix, r.Header
	}
	ix, h := refs("")
	if len(ix.Manifests) != 2 || h.Get("OCI-Filters-Applied") != "" {
		t.Errorf("referrers %+v", ix)
	}
	ix, h = refs("?artifactType=application/vnd.example.sbom")
	if len(ix.Manifests) != 1 || ix.Manifests[0].Digest != sbom || ix.Manifests[0].Annotations["a"] != "b" || h.Get("OCI-Filters-Applied") != "artifactType" {
		t.Errorf("filtered referrers %+v %v", ix, h)
	}
	// Unknown subject: empty; bad digest: 400.
	r := e.do(request{method: "GET", path: "/v2/app/referrers/" + digest.FromString("x").String(), auth: "basic"}).want(t, 200, "")
	if !bytes.Contains(r.body, []byte(`"manifests":[]`)) {
		t.Errorf("empty referrers %s", r.body)
	}
	e.do(request{method: "GET", path: "/v2/app/referrers/sha256:bad", auth: "basic"}).want(t, 400, "DIGEST_INVALID")

	// Delete the signature by digest: gone from referrers.
	e.do(request{method: "DELETE", path: "/v2/app/manifests/" + sig.String(), auth: "basic"}).want(t, 202, "")
	e.do(request{method: "GET", path: "/v2/app/manifests/" + sig.String(), auth: "basic"}).want(t, 404, "MANIFEST_UNKNOWN")
	e.do(request{method: "DELETE", path: "/v2/app/manifests/" + sig.String(), auth: "basic"}).want(t, 404, "MANIFEST_UNKNOWN")
	if ix, _ = refs(""); len(ix.Manifests) != 1 {
		t.Errorf("referrers after delete %+v", ix)
	}
	// Delete a tag: the manifest stays.
	e.do(request{method: "DELETE", path: "/v2/app/manifests/v1", auth: "basic"}).want(t, 202, "")
	e.do(request{method: "GET", path: "/v2/app/manifests/v1", auth: "basic"}).want(t, 404, "MANIFEST_UNKNOWN")
	e.do(request{method: "GET", path: "/v2/app/manifests/" + subject.digest.String(), auth: "basic"}).want(t, 200, "")
	// ?tag= on a digest PUT, with OCI-Tag answers.
	r = e.do(request{method: "PUT", path: "/v2/app/manifests/" + subject.digest.String() + "?tag=a&tag=b", body: subject.manifest, auth: "basic",
		header: http.Header{"Content-Type": {mediaTypeOCIManifest}}}).want(t, 201, "")
	if got := r.Header.Values("OCI-Tag"); strings.Join(got, ",") != "a,b" {
		t.Errorf("OCI-Tag %v", got)
	}
	e.do(request{method: "GET", path: "/v2/app/manifests/b", auth: "basic"}).want(t, 200, "")
	// Deleting the manifest takes its tags.
	e.do(request{method: "DELETE", path: "/v2/app/manifests/" + subject.digest.String(), auth: "basic"}).want(t, 202, "")
	e.do(request{method: "GET", path: "/v2/app/manifests/a", auth: "basic"}).want(t, 404, "MANIFEST_UNKNOWN")
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := e.pushImage("app", "v1", "1")
	ctx := context.Background()
	before := e.snapshot()
	ct := http.Header{"Content-Type": {mediaTypeOCIManifest}}
	big := bytes.Repeat([]byte(" "), maxManifestSize+1)
	missing := manifestJSON(mediaTypeOCIManifest, digest.FromString("no config"), 3, digest.FromBytes(img.layer), len(img.layer))
	for _, tc := range []struct {
		method, path string
		body         []byte
		header       http.Header
		status       int
		code         string
	}{
		{"GET", "/v2/UPPER/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"GET", "/v2/a..b/manifests/v1", nil, nil, 400, "NAME_INVALID"},
		{"GET", "/v2/" + strings.Repeat("a", 257) + "/manifests/v1", nil, nil, 400, "NAME_INVALID"},
		{"PUT", "/v2/app/manifests/.bad", img.manifest, ct, 400, "TAG_INVALID"},
		{"PUT", "/v2/app/manifests/" + strings.Repeat("t", 129), img.manifest, ct, 400, "TAG_INVALID"},
		{"PUT", "/v2/app/manifests/sha256:123", img.manifest, ct, 400, "DIGEST_INVALID"},
		{"PUT", "/v2/app/manifests/md5:d41d8cd98f00b204e9800998ecf8427e", img.manifest, ct, 400, "DIGEST_INVALID"},
		{"PUT", "/v2/app/manifests/" + digest.FromString("other").String(), img.manifest, ct, 400, "DIGEST_INVALID"},
		{"PUT", "/v2/app/manifests/v2", img.manifest, http.Header{"Content-Type": {"application/vnd.example+json"}}, 400, "MANIFEST_INVALID"},
		{"PUT", "/v2/app/manifests/v2", img.manifest, http.Header{"Content-Type": {mediaTypeOCIIndex}}, 400, "MANIFEST_INVALID"},
		{"PUT", "/v2/app/manifests/v2", []byte(`{"schemaVersion":1}`), ct, 400, "MANIFEST_INVALID"},
		{"PUT", "/v2/app/manifests/v2", []byte(`not json`), ct, 400, "MANIFEST_INVALID"},
		{"PUT", "/v2/app/manifests/v2", big, ct, 413, "MANIFEST_INVALID"},
		{"PUT", "/v2/app/manifests/v2", missing, ct, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"PUT", "/v2/other/manifests/v2", img.manifest, ct, 400, "MANIFEST_BLOB_UNKNOWN"}, // blobs of another repository
		{"POST", "/v2/app/blobs/uploads/?digest=" + digest.FromString("x").String(), []byte("y"), nil, 400, "DIGEST_INVALID"},
		{"POST", "/v2/app/blobs/uploads/?digest=sha256:zz", []byte("y"), nil, 400, "DIGEST_INVALID"},
		{"POST", "/v2/app/blobs/uploads/?digest-algorithm=md5", nil, nil, 400, "DIGEST_INVALID"},
		{"PATCH", "/v2/app/blobs/uploads/00000000-0000-0000-0000-000000000000", []byte("x"), nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"PUT", "/v2/app/blobs/uploads/nope?digest=" + digest.FromString("x").String(), nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"DELETE", "/v2/app/blobs/uploads/nope", nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"GET", "/v2/app/blobs/uploads/nope", nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"GET", "/v2/app/blobs/" + digest.FromString("none").String(), nil, nil, 404, "BLOB_UNKNOWN"},
		{"GET", "/v2/app/manifests/none", nil, nil, 404, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/none/manifests/v1", nil, nil, 404, "NAME_UNKNOWN"},
		{"GET", "/v2/app/tags/list?n=abc", nil, nil, 400, "PAGINATION_NUMBER_INVALID"},
	} {
		h := tc.header
		if h == nil {
			h = http.Header{}
		}
		e.do(request{method: tc.method, path: tc.path, body: tc.body, header: h, auth: "basic"}).want(t, tc.status, tc.code)
	}
	// Uploads: wrong digest and a truncated body leave nothing behind.
	loc := e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: "basic"}).want(t, 202, "").Header.Get("Location")
	e.do(request{method: "PATCH", path: loc, body: []byte("abc"), auth: "basic"}).want(t, 202, "")
	e.do(request{method: "PUT", path: loc + "?digest=" + digest.FromString("abcd").String(), auth: "basic"}).want(t, 400, "DIGEST_INVALID")
	e.do(request{method: "PUT", path: loc + "?digest=" + digest.FromString("abc").String(), auth: "basic"}).want(t, 404, "BLOB_UPLOAD_UNKNOWN")
	loc = e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: "basic"}).want(t, 202, "").Header.Get("Location")
	e.do(request{method: "PUT", path: loc, auth: "basic"}).want(t, 400, "DIGEST_INVALID") // no digest
	e.do(request{method: "PATCH", path: loc, body: []byte("abc"), header: http.Header{"Content-Range": {"0-9"}}, auth: "basic"}).want(t, 400, "SIZE_INVALID")
	e.do(request{method: "DELETE", path: loc, auth: "basic"}).want(t, 204, "")
	// A monolithic upload whose connection drops before Content-Length bytes.
	e.truncatedPost("/v2/app/blobs/uploads/?digest="+digest.FromString("0123456789").String(), "01234")
	e.truncatedPost("/v2/app/manifests/v9", `{"schemaVersion":2,`)
	if after := e.snapshot(); after != before {
		t.Errorf("bad requests changed the registry:\nbefore %s\nafter  %s", before, after)
	}
	if n, _ := e.blobs.Stat(ctx, digest.FromString("abc")); n != 0 {
		t.Error("a rejected upload's blob exists")
	}
}

// snapshot describes the registry's stored state: every key of its tables
// and every blob.
func (e *env) snapshot() string {
	e.t.Helper()
	var b strings.Builder
	ctx := context.Background()
	err := e.store.View(ctx, func(tx store.Tx) error {
		for _, table := range e.reg.tables.all() {
			keys, err := scanKeys(tx, table, "")
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s=%v ", table[strings.LastIndex(table, "/")+1:], keys)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	_ = e.blobs.Walk(ctx, func(digest.Digest, int64) error { n++; return nil })
	m := 0
	_ = e.blobs.Uploads(ctx, func(string, int64) error { m++; return nil })
	fmt.Fprintf(&b, "blobs=%d uploads=%d", n, m)
	return b.String()
}

func TestGarbageCollection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realStores(t))
	ctx := context.Background()
	const grace = time.Hour
	keep := e.pushImage("app", "v1", "keep")
	gone := e.pushImage("app", "v2", "gone")
	stray := e.pushBlob("app", []byte("pushed, never referenced"))
	// An abandoned upload and one still being written.
	abandoned := e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: "basic"}).want(t, 202, "").Header.Get("Location")
	e.do(request{method: "PATCH", path: abandoned, body: []byte("half"), auth: "basic"}).want(t, 202, "")
	active := e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: "basic"}).want(t, 202, "").Header.Get("Location")
	e.do(request{method: "DELETE", path: "/v2/app/manifests/" + gone.digest.String(), auth: "basic"}).want(t, 202, "")

	// Nothing is old enough yet.
	st, err := e.reg.CollectGarbage(ctx, grace)
	if err != nil || st != (GCStats{}) {
		t.Fatalf("first pass: %+v %v", st, err)
	}
	e.clock.Advance(grace + time.Minute)
	e.do(request{method: "PATCH", path: active, body: []byte("more"), auth: "basic"}).want(t, 202, "")
	// Content unlinked since the first pass goes (gone's manifest), and the
	// upload idle since then; unreferenced links stay for a day.
	if st, err = e.reg.CollectGarbage(ctx, grace); err != nil || st != (GCStats{Blobs: 1, Uploads: 1}) {
		t.Fatalf("second pass: %+v %v", st, err)
	}
	e.clock.Advance(DefaultLinkGrace)
	e.do(request{method: "PATCH", path: active, body: []byte("more"), auth: "basic"}).want(t, 202, "")
	// Now the links go (gone's config and layer, the stray blob).
	if st, err = e.reg.CollectGarbage(ctx, grace); err != nil || st != (GCStats{Links: 3}) {
		t.Fatalf("third pass: %+v %v", st, err)
	}
	e.clock.Advance(grace + time.Minute)
	e.do(request{method: "PATCH", path: active, body: []byte("more"), auth: "basic"}).want(t, 202, "")
	// The content of the links dropped in the third pass.
	if st, err = e.reg.CollectGarbage(ctx, grace); err != nil || st != (GCStats{Blobs: 3}) {
		t.Fatalf("fourth pass: %+v %v", st, err)
	}
	for _, d := range []digest.Digest{gone.digest, digest.FromBytes(gone.layer), stray} {
		if _, err := e.blobs.Stat(ctx, d); err == nil {
			t.Errorf("%s survived", d)
		}
	}
	e.do(request{method: "GET", path: abandoned, auth: "basic"}).want(t, 404, "BLOB_UPLOAD_UNKNOWN")
	e.do(request{method: "GET", path: active, auth: "basic"}).want(t, 204, "")
	// What is referenced stays, and pulls.
	r := e.do(request{method: "GET", path: "/v2/app/manifests/v1", auth: "basic"}).want(t, 200, "")
	if !bytes.Equal(r.body, keep.manifest) {
		t.Error("kept manifest changed")
	}
	e.do(request{method: "GET", path: "/v2/app/blobs/" + digest.FromBytes(keep.layer).String(), auth: "basic"}).want(t, 200, "")

	// A push of content the collector is about to take waits for it, and
	// is linked afterwards (or finds the content gone and uploads it).
	orphan := []byte("orphaned then pushed again")
	od := e.pushBlob("tmp", orphan)
	e.do(request{method: "DELETE", path: "/v2/tmp/blobs/" + od.String(), auth: "basic"}).want(t, 202, "")
	if !e.reg.locks.tryCollect(od) {
		t.Fatal("tryCollect")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.pushBlob("tmp", orphan)
	}()
	select {
	case <-done:
		t.Fatal("push did not wait for the collector")
	case <-time.After(50 * time.Millisecond):
	}
	e.reg.locks.endCollect(od)
	<-done
	e.do(request{method: "GET", path: "/v2/tmp/blobs/" + od.String(), auth: "basic"}).want(t, 200, "")
}

func TestPurgeAndDestroy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realStores(t))
	ctx := context.Background()
	e.pushImage("app", "v1", "1")
	e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: "basic"}).want(t, 202, "")
	// Another registry in the same store is left alone.
	other, err := New(Config{Name: "other", LoginServer: "127.0.0.1:1", Blobs: e.blobs, Store: e.store,
		Auth: StaticAuth{Username: "u", Password: "p"}, SigningKey: signingKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = e.store.Update(ctx, func(tx store.Tx) error {
		return putJSON(tx, other.tables.repositories, "kept", repositoryRecord{})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.reg.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if s := e.snapshot(); s != "repositories=[] blobs=[] manifests=[] tags=[] referrers=[] uploads=[] blobs=0 uploads=0" {
		t.Errorf("after Destroy: %s", s)
	}
	if err := e.reg.Destroy(ctx); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	err = e.store.View(ctx, func(tx store.Tx) error {
		_, err := tx.Get(other.tables.repositories, "kept")
		return err
	})
	if err != nil {
		t.Errorf("other registry: %v", err)
	}
	if err := Purge(ctx, e.store, "other"); err != nil {
		t.Fatal(err)
	}
	e.do(request{method: "GET", path: "/v2/app/manifests/v1", auth: "basic"}).want(t, 404, "NAME_UNKNOWN")
}

// truncatedPost sends a request whose body stops short of its
// Content-Length, then closes the connection.
func (e *env) truncatedPost(path, partial string) {
	e.t.Helper()
	conn, err := tls.Dial("tcp", e.host, e.client.Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		e.t.Fatal(err)
	}
	method := "POST"
	if strings.Contains(path, "/manifests/") {
		method = "PUT"
	}
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
		method, path, e.host, base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPassword)), mediaTypeOCIManifest, len(partial)+100, partial)
	_ = conn.CloseWrite()
	_, _ = io.Copy(io.Discard, conn) // the server answers or hangs up
	conn.Close()
}

// BenchmarkManifestGet measures manifest GETs and HEADs with a reused
// access token over TLS, on the product stores, from parallel clients.
func BenchmarkManifestGet(b *testing.B) {
	for _, method := range []string{"HEAD", "GET"} {
		b.Run(method, func(b *testing.B) {
			e := newEnv(b, realStores(b))
			e.pushImage("bench/app", "v1", "1")
			tok := e.token("repository:bench/app:pull")
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(method, e.base+"/v2/bench/app/manifests/v1", nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					req.Header.Set("Accept", mediaTypeOCIManifest)
					resp, err := e.client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var st *bolt.Store
	stores := func(c *Config) {
		blobs, err := blobfs.New(filepath.Join(dir, "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		if st, err = bolt.Open(filepath.Join(dir, "state.db")); err != nil {
			t.Fatal(err)
		}
		c.Blobs, c.Store = blobs, st
	}
	e := newEnv(t, stores)
	img := e.pushImage("app", "v1", "1")
	e.do(request{method: "PATCH", path: "/acr/v1/app/_tags/v1", body: []byte(`{"deleteEnabled":false}`), auth: "basic"}).want(t, 200, "")
	loc := e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: "basic"}).want(t, 202, "").Header.Get("Location")
	e.do(request{method: "PATCH", path: loc, body: []byte("first half|"), auth: "basic"}).want(t, 202, "")
	e.srv.Close()
	must(t, st.Close())

	// A new process on the same directories.
	e2 := newEnv(t, stores)
	defer st.Close()
	r := e2.do(request{method: "GET", path: "/v2/app/manifests/v1", auth: "basic"}).want(t, 200, "")
	if !bytes.Equal(r.body, img.manifest) {
		t.Errorf("manifest after restart %s", r.body)
	}
	e2.do(request{method: "GET", path: "/v2/app/blobs/" + digest.FromBytes(img.layer).String(), auth: "basic"}).want(t, 200, "")
	e2.do(request{method: "DELETE", path: "/v2/app/manifests/v1", auth: "basic"}).want(t, 405, "UNSUPPORTED")
	r = e2.do(request{method: "GET", path: loc, auth: "basic"}).want(t, 204, "")
	if r.Header.Get("Range") != "0-10" {
		t.Errorf("upload after restart: Range %q", r.Header.Get("Range"))
	}
	whole := []byte("first half|second half")
	e2.do(request{method: "PUT", path: loc + "?digest=" + digest.FromBytes(whole).String(), body: whole[11:], auth: "basic",
		header: http.Header{"Content-Range": {"11-21"}}}).want(t, 201, "")
}

func TestManifestSizeLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := e.pushImage("app", "v1", "1")
	body := append(bytes.Clone(img.manifest), bytes.Repeat([]byte(" "), maxManifestSize-len(img.manifest))...)
	ct := http.Header{"Content-Type": {mediaTypeOCIManifest}}
	e.do(request{method: "PUT", path: "/v2/app/manifests/v2", body: body, header: ct, auth: "basic"}).want(t, 201, "")
	r := e.do(request{method: "GET", path: "/v2/app/manifests/v2", auth: "basic"}).want(t, 200, "")
	if len(r.body) != maxManifestSize {
		t.Errorf("got %d bytes", len(r.body))
	}
	e.do(request{method: "PUT", path: "/v2/app/manifests/v3", body: append(body, ' '), header: ct, auth: "basic"}).want(t, 413, "MANIFEST_INVALID")
}

// TestGarbageCollectionUnderLoad runs the collector continuously, each pass
// a second later than the last with grace periods of three, while clients
// push images that share layers: every manifest acknowledged stays
// complete. (A push whose layers were collected before its manifest arrived
// is refused, and retried.)
func TestGarbageCollectionUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realStores(t), func(c *Config) { c.LinkGrace = 3 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	gcDone := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			e.clock.Advance(time.Second)
			if _, err := e.reg.CollectGarbage(context.Background(), 3*time.Second); err != nil {
				gcDone <- err
				return
			}
		}
		gcDone <- nil
	}()
	shared := []byte("a layer every image has")
	type pushed struct {
		repo string
		img  image
	}
	results := make(chan pushed, 64)
	for w := range 4 {
		go func() {
			repo := fmt.Sprintf("load/w%d", w)
			for i := range 8 {
				for attempt := 0; ; attempt++ {
					img := image{config: []byte(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)), layer: shared}
					for _, c := range [][]byte{img.config, img.layer} {
						d := digest.FromBytes(c)
						if r := e.do(request{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + d.String(), body: c, auth: "basic"}); r.StatusCode != 201 {
							t.Errorf("blob push: %d %s", r.StatusCode, r.body)
						}
					}
					img.manifest = manifestJSON(mediaTypeOCIManifest, digest.FromBytes(img.config), len(img.config), digest.FromBytes(shared), len(shared))
					r := e.do(request{method: "PUT", path: fmt.Sprintf("/v2/%s/manifests/t%d", repo, i), body: img.manifest, auth: "basic",
						header: http.Header{"Content-Type": {mediaTypeOCIManifest}}})
					if r.StatusCode == 201 {
						results <- pushed{repo, img}
						break
					}
					if r.StatusCode != 400 || !bytes.Contains(r.body, []byte("MANIFEST_BLOB_UNKNOWN")) {
						t.Errorf("manifest push: %d %s", r.StatusCode, r.body)
					}
					if attempt > 50 {
						t.Errorf("%s t%d: never got through", repo, i)
						results <- pushed{}
						break
					}
				}
			}
		}()
	}
	var all []pushed
	for range 4 * 8 {
		all = append(all, <-results)
	}
	cancel()
	if err := <-gcDone; err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if p.repo == "" {
			continue
		}
		d := digest.FromBytes(p.img.manifest)
		r := e.do(request{method: "GET", path: "/v2/" + p.repo + "/manifests/" + d.String(), auth: "basic"}).want(t, 200, "")
		if !bytes.Equal(r.body, p.img.manifest) {
			t.Errorf("%s@%s changed", p.repo, d)
		}
		for _, c := range [][]byte{p.img.config, p.img.layer} {
			r := e.do(request{method: "GET", path: "/v2/" + p.repo + "/blobs/" + digest.FromBytes(c).String(), auth: "basic"}).want(t, 200, "")
			if !bytes.Equal(r.body, c) {
				t.Errorf("%s: blob %s changed", p.repo, digest.FromBytes(c))
			}
		}
	}
}

// TestGarbageCollectionBadRecord: a manifest record that cannot be decoded
// fails neither the pass nor its repository's blobs; the rest of the
// registry is collected as usual.
func TestGarbageCollectionBadRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	img := e.pushImage("app", "v1", "bad")
	stray := e.pushBlob("other", []byte("nobody references me"))
	err := e.store.Update(ctx, func(tx store.Tx) error {
		return tx.Put(e.reg.tables.manifests, repoKey("app", img.digest.String()), []byte("{not json"))
	})
	must(t, err)
	var links int
	for range 3 {
		e.clock.Advance(DefaultLinkGrace)
		st, err := e.reg.CollectGarbage(ctx, time.Hour)
		if err != nil {
			t.Fatalf("pass failed: %v", err)
		}
		links += st.Links
	}
	if links != 1 {
		t.Errorf("%d links collected, want 1 (the stray blob's)", links)
	}
	if _, err := e.blobs.Stat(ctx, stray); err == nil {
		t.Error("the stray blob survived")
	}
	for _, c := range [][]byte{img.config, img.layer} {
		e.do(request{method: "GET", path: "/v2/app/blobs/" + digest.FromBytes(c).String(), auth: "basic"}).want(t, 200, "")
	}
}

// A push may take hours between its layers and its manifest (a slow
// upload, a resumed push that first checks with HEAD which layers are
// there): unreferenced links stay a day after their last push, mount or
// read in their repository, while orphaned content goes after the grace
// period.
func TestLinksOutliveSlowPushes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const grace = time.Hour
	gc := func() GCStats {
		t.Helper()
		st, err := e.reg.CollectGarbage(ctx, grace)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	img := image{config: []byte(`{"slow":true}`), layer: []byte("a slow layer")}
	cd, ld := e.pushBlob("app", img.config), e.pushBlob("app", img.layer)
	unused := e.pushBlob("app", []byte("pushed, never used again"))
	mounted := e.pushBlob("src", []byte("mounted later"))
	e.do(request{method: "POST", path: "/v2/app/blobs/uploads/?mount=" + mounted.String() + "&from=src", auth: "basic"}).want(t, 201, "")
	// Hours pass, with the collector running.
	for range 5 {
		e.clock.Advance(grace + time.Minute)
		if st := gc(); st.Links != 0 {
			t.Fatalf("links collected after %v: %+v", e.clock.Now().Sub(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)), st)
		}
	}
	img.manifest = manifestJSON(mediaTypeOCIManifest, cd, len(img.config), ld, len(img.layer))
	e.do(request{method: "PUT", path: "/v2/app/manifests/v1", body: img.manifest, auth: "basic",
		header: http.Header{"Content-Type": {mediaTypeOCIManifest}}}).want(t, 201, "")

	// Use renews: a day after the push, the blobs read (HEAD, GET),
	// mounted or pushed again since stay; the one left alone goes.
	e.do(request{method: "DELETE", path: "/v2/app/manifests/" + digest.FromBytes(img.manifest).String(), auth: "basic"}).want(t, 202, "")
	e.clock.Advance(DefaultLinkGrace - 2*time.Hour)
	e.do(request{method: "HEAD", path: "/v2/app/blobs/" + cd.String(), auth: "basic"}).want(t, 200, "")
	e.do(request{method: "GET", path: "/v2/app/blobs/" + ld.String(), auth: "basic"}).want(t, 200, "")
	e.do(request{method: "POST", path: "/v2/app/blobs/uploads/?mount=" + mounted.String() + "&from=src", auth: "basic"}).want(t, 201, "")
	e.clock.Advance(3 * time.Hour)
	if st := gc(); st.Links != 2 { // unused in app, mounted in src
		t.Fatalf("collected %+v, want 2 links", st)
	}
	e.do(request{method: "HEAD", path: "/v2/app/blobs/" + unused.String(), auth: "basic"}).want(t, 404, "")
	e.do(request{method: "PUT", path: "/v2/app/manifests/v1", body: img.manifest, auth: "basic",
		header: http.Header{"Content-Type": {mediaTypeOCIManifest}}}).want(t, 201, "")
	e.do(request{method: "HEAD", path: "/v2/app/blobs/" + mounted.String(), auth: "basic"}).want(t, 200, "")
}

// readEnabled=false on a repository or manifest is honoured by every way
// of reading: a mount without from does not take content from a
// read-disabled repository (it answers with an upload session, as
// distribution does), the blobs endpoint does not serve a read-disabled
// manifest's bytes, and referrers of a read-disabled repository are not
// listed.
func TestReadDisabledEverywhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	patch := func(path, body string) {
		t.Helper()
		e.do(request{method: "PATCH", path: "/acr/v1/" + path, body: []byte(body), auth: "basic"}).want(t, 200, "")
	}
	secret := digest.FromBytes(e.pushImage("private", "v1", "secret").layer)
	patch("private", `{"readEnabled":false}`)
	r := e.do(request{method: "POST", path: "/v2/thief/blobs/uploads/?mount=" + secret.String(), auth: "basic"}).want(t, 202, "")
	if !strings.HasPrefix(r.Header.Get("Location"), "/v2/thief/blobs/uploads/") {
		t.Errorf("Location %q is not an upload session", r.Header.Get("Location"))
	}
	e.do(request{method: "GET", path: "/v2/thief/blobs/" + secret.String(), auth: "basic"}).want(t, 404, "BLOB_UNKNOWN")
	// Linked in a readable repository too: mountable.
	e.pushBlob("public", []byte("layer secret"))
	e.do(request{method: "POST", path: "/v2/thief/blobs/uploads/?mount=" + secret.String(), auth: "basic"}).want(t, 201, "")
	patch("private", `{"readEnabled":true}`)

	img := e.pushImage("app", "v1", "1")
	e.do(request{method: "GET", path: "/v2/app/blobs/" + img.digest.String(), auth: "basic"}).want(t, 200, "")
	patch("app/_manifests/"+img.digest.String(), `{"readEnabled":false}`)
	e.do(request{method: "GET", path: "/v2/app/blobs/" + img.digest.String(), auth: "basic"}).want(t, 403, "DENIED")
	e.do(request{method: "HEAD", path: "/v2/app/blobs/" + img.digest.String(), auth: "basic"}).want(t, 403, "")
	patch("app/_manifests/"+img.digest.String(), `{"readEnabled":true}`)

	referrers := "/v2/app/referrers/" + img.digest.String()
	e.do(request{method: "GET", path: referrers, auth: "basic"}).want(t, 200, "")
	patch("app", `{"readEnabled":false}`)
	e.do(request{method: "GET", path: referrers, auth: "basic"}).want(t, 403, "DENIED")
}

// After StartGC's stop returns, no pass runs: a registry re-created under
// the same name (same directory) keeps its content.
func TestGarbageCollectionStops(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realStores(t))
	ctx := context.Background()
	stop := e.reg.StartGC(time.Millisecond, 0)
	stop()
	stray := e.pushBlob("app", []byte("unreferenced, collectable at once"))
	e.clock.Advance(DefaultLinkGrace + time.Hour)
	time.Sleep(50 * time.Millisecond) // many intervals of a collector that kept running
	if _, err := e.blobs.Stat(ctx, stray); err != nil {
		t.Fatalf("collected after stop: %v", err)
	}
	// The same blob is collectable: a pass (run by hand) takes it.
	if st, err := e.reg.CollectGarbage(ctx, 0); err != nil || st.Blobs != 1 {
		t.Fatalf("manual pass: %+v %v", st, err)
	}
}
