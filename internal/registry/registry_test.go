package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/blob"
	"github.com/berth-dev/berth/internal/store"
)

func TestParseV2Path(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path string
		want route
		ok   bool
	}{
		{"/v2/", route{name: routeBase}, true},
		{"/v2/app/blobs/sha256:ab", route{name: routeBlob, repo: "app", ref: "sha256:ab"}, true},
		{"/v2/a/b/c/blobs/uploads/", route{name: routeUploadStart, repo: "a/b/c"}, true},
		{"/v2/a/b/c/blobs/uploads", route{name: routeUploadStart, repo: "a/b/c"}, true},
		{"/v2/a/blobs/uploads/123-abc", route{name: routeUpload, repo: "a", ref: "123-abc"}, true},
		{"/v2/a/manifests/latest", route{name: routeManifest, repo: "a", ref: "latest"}, true},
		{"/v2/tags/manifests/manifests", route{name: routeManifest, repo: "tags", ref: "manifests"}, true},
		{"/v2/a/b/tags/list", route{name: routeTags, repo: "a/b"}, true},
		{"/v2/blobs/blobs/uploads/", route{name: routeUploadStart, repo: "blobs"}, true},
		{"/v2/a/manifests/", route{}, false},
		{"/v2/a/blobs/", route{}, false},
		{"/v2/a", route{}, false},
		{"/v2/_catalog", route{name: routeCatalog}, true},
		{"/v3/a/tags/list", route{}, false},
	}
	for _, tc := range tests {
		got, ok := parsePath(tc.path)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parsePath(%q) = %+v, %v; want %+v, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do(request{method: "GET", path: "/v2/_catalog/x", auth: "basic"}).want(t, 404, "NOT_FOUND")
	e.do(request{method: "GET", path: "/nothing", auth: "basic"}).want(t, 404, "NOT_FOUND")
	e.do(request{method: "GET", path: "/v2/app/blobs/uploads/..%2F..%2Fx", auth: "basic"}).want(t, 404, "NOT_FOUND")
	e.do(request{method: "PUT", path: "/oauth2/token"}).want(t, 405, "UNSUPPORTED")
	e.do(request{method: "GET", path: "/v2", auth: "basic"}).want(t, 200, "")
	e.do(request{method: "POST", path: "/v2/app/manifests/v1", auth: "basic"}).want(t, 405, "UNSUPPORTED")
	e.do(request{method: "GET", path: "/v2/App/tags/list", auth: "basic"}).want(t, 400, "NAME_INVALID")
	e.do(request{method: "GET", path: "/v2/a//b/tags/list", auth: "basic"}).want(t, 400, "NAME_INVALID")
	e.do(request{method: "GET", path: "/v2/app/manifests/bad:tag!", auth: "basic"}).want(t, 400, "DIGEST_INVALID")
	e.do(request{method: "GET", path: "/v2/app/manifests/-tag", auth: "basic"}).want(t, 400, "TAG_INVALID")
	e.do(request{method: "GET", path: "/v2/app/blobs/sha256:zz", auth: "basic"}).want(t, 400, "DIGEST_INVALID")
}

func TestMonolithicUpload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	content := []byte("monolithic blob")
	d := digest.FromBytes(content)
	r := e.do(request{method: "POST", path: "/v2/a/b/blobs/uploads/?digest=" + d.String(), body: content, auth: "basic"}).want(t, 201, "")
	if r.Header.Get("Docker-Content-Digest") != d.String() || r.Header.Get("Location") != "/v2/a/b/blobs/"+d.String() {
		t.Errorf("headers %v", r.Header)
	}
	r = e.do(request{method: "GET", path: "/v2/a/b/blobs/" + d.String(), auth: "basic"}).want(t, 200, "")
	if !bytes.Equal(r.body, content) {
		t.Errorf("body %q", r.body)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/octet-stream", "Docker-Content-Digest": d.String(),
		"Content-Length": fmt.Sprint(len(content)), "Docker-Distribution-Api-Version": "registry/2.0",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	r = e.do(request{method: "HEAD", path: "/v2/a/b/blobs/" + d.String(), auth: "basic"}).want(t, 200, "")
	if r.ContentLength != int64(len(content)) || len(r.body) != 0 {
		t.Errorf("HEAD: length %d body %q", r.ContentLength, r.body)
	}
	// A blob of one repository is unknown in another.
	e.do(request{method: "GET", path: "/v2/other/blobs/" + d.String(), auth: "basic"}).want(t, 404, "BLOB_UNKNOWN")
	e.do(request{method: "HEAD", path: "/v2/a/b/blobs/" + digest.FromString("x").String(), auth: "basic"}).want(t, 404, "")
}

func TestBlobRange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.pushBlob("app", []byte("0123456789"))
	r := e.do(request{method: "GET", path: "/v2/app/blobs/" + d.String(), auth: "basic",
		header: http.Header{"Range": {"bytes=2-5"}}}).want(t, 206, "")
	if string(r.body) != "2345" || r.Header.Get("Content-Range") != "bytes 2-5/10" {
		t.Errorf("body %q Content-Range %q", r.body, r.Header.Get("Content-Range"))
	}
}

func TestChunkedUpload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	content := []byte("chunk one|chunk two|chunk three")
	d := digest.FromBytes(content)

	r := e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: "basic"}).want(t, 202, "")
	loc, id := r.Header.Get("Location"), r.Header.Get("Docker-Upload-UUID")
	if loc != "/v2/app/blobs/uploads/"+id || r.Header.Get("Range") != "0-0" {
		t.Fatalf("POST headers %v", r.Header)
	}
	chunks := [][]byte{content[:10], content[10:20], content[20:25]}
	off := 0
	for _, c := range chunks {
		cr := fmt.Sprintf("%d-%d", off, off+len(c)-1)
		r = e.do(request{method: "PATCH", path: loc, body: c, auth: "basic",
			header: http.Header{"Content-Range": {cr}, "Content-Type": {"application/octet-stream"}}}).want(t, 202, "")
		off += len(c)
		if r.Header.Get("Range") != fmt.Sprintf("0-%d", off-1) || r.Header.Get("Location") != loc {
			t.Fatalf("PATCH headers %v", r.Header)
		}
		loc = r.Header.Get("Location")
	}
	// A chunk out of order (a retry of the last one) is refused with 416.
	r = e.do(request{method: "PATCH", path: loc, body: chunks[2], auth: "basic",
		header: http.Header{"Content-Range": {"20-24"}}}).want(t, 416, "RANGE_INVALID")
	if r.Header.Get("Range") != "0-24" || r.Header.Get("Location") != loc {
		t.Errorf("416 headers %v", r.Header)
	}
	// Status.
	r = e.do(request{method: "GET", path: loc, auth: "basic"}).want(t, 204, "")
	if r.Header.Get("Range") != "0-24" || r.Header.Get("Docker-Upload-UUID") != id {
		t.Errorf("status headers %v", r.Header)
	}
	// Not visible before the PUT.
	e.do(request{method: "HEAD", path: "/v2/app/blobs/" + d.String(), auth: "basic"}).want(t, 404, "")
	// A chunk without Content-Range (streamed), then the last one in the PUT.
	e.do(request{method: "PATCH", path: loc, body: content[25:28], auth: "basic"}).want(t, 202, "")
	r = e.do(request{method: "PUT", path: loc + "?digest=" + d.String(), body: content[28:], auth: "basic"}).want(t, 201, "")
	if r.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("PUT headers %v", r.Header)
	}
	r = e.do(request{method: "GET", path: "/v2/app/blobs/" + d.String(), auth: "basic"}).want(t, 200, "")
	if !bytes.Equal(r.body, content) {
		t.Errorf("blob %q", r.body)
	}
	// The upload is finished.
	e.do(request{method: "GET", path: loc, auth: "basic"}).want(t, 404, "BLOB_UPLOAD_UNKNOWN")
	assertNoUploads(t, e)
}

func TestUploadWrongDigest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	content := []byte("the real content")
	claimed := digest.FromString("something else")
	actual := digest.FromBytes(content)

	r := e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: "basic"}).want(t, 202, "")
	loc := r.Header.Get("Location")
	e.do(request{method: "PATCH", path: loc, body: content, auth: "basic"}).want(t, 202, "")
	e.do(request{method: "PUT", path: loc + "?digest=" + claimed.String(), auth: "basic"}).want(t, 400, "DIGEST_INVALID")
	// Monolithic, too.
	e.do(request{method: "POST", path: "/v2/app/blobs/uploads/?digest=" + claimed.String(), body: content, auth: "basic"}).want(t, 400, "DIGEST_INVALID")

	for _, d := range []digest.Digest{claimed, actual} {
		e.do(request{method: "HEAD", path: "/v2/app/blobs/" + d.String(), auth: "basic"}).want(t, 404, "")
		if _, err := e.blobs.Stat(context.Background(), d); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("blob store has %s: %v", d, err)
		}
	}
	e.do(request{method: "GET", path: loc, auth: "basic"}).want(t, 404, "BLOB_UPLOAD_UNKNOWN")
	assertNoUploads(t, e)
	// A malformed digest leaves the upload usable.
	r = e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: "basic"}).want(t, 202, "")
	loc = r.Header.Get("Location")
	e.do(request{method: "PUT", path: loc + "?digest=sha256:nothex", body: content, auth: "basic"}).want(t, 400, "DIGEST_INVALID")
	e.do(request{method: "PUT", path: loc + "?digest=" + actual.String(), body: content, auth: "basic"}).want(t, 201, "")
}

// assertNoUploads checks that no upload record is left in the state store.
func assertNoUploads(t *testing.T, e *env) {
	t.Helper()
	_ = e.store.View(context.Background(), func(tx store.Tx) error {
		return tx.Scan(e.reg.tables.uploads, "", func(k string, _ []byte) bool {
			t.Errorf("upload record %s left behind", k)
			return true
		})
	})
}

func TestUploadBoundToRepository(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(request{method: "POST", path: "/v2/app/blobs/uploads/", auth: "basic"}).want(t, 202, "")
	id := r.Header.Get("Docker-Upload-UUID")
	e.do(request{method: "PATCH", path: "/v2/other/blobs/uploads/" + id, body: []byte("x"), auth: "basic"}).want(t, 404, "BLOB_UPLOAD_UNKNOWN")
	e.do(request{method: "PATCH", path: "/v2/app/blobs/uploads/bad.id", body: []byte("x"), auth: "basic"}).want(t, 404, "BLOB_UPLOAD_UNKNOWN")
	e.do(request{method: "DELETE", path: "/v2/app/blobs/uploads/" + id, auth: "basic"}).want(t, 204, "")
	e.do(request{method: "GET", path: "/v2/app/blobs/uploads/" + id, auth: "basic"}).want(t, 404, "BLOB_UPLOAD_UNKNOWN")
	assertNoUploads(t, e)
}

func TestManifestPushPull(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := e.pushImage("team/app", "v1", "1")

	for _, ref := range []string{"v1", img.digest.String()} {
		r := e.do(request{method: "GET", path: "/v2/team/app/manifests/" + ref, auth: "basic"}).want(t, 200, "")
		if !bytes.Equal(r.body, img.manifest) {
			t.Errorf("GET %s: body %s", ref, r.body)
		}
		if r.Header.Get("Content-Type") != mediaTypeOCIManifest || r.Header.Get("Docker-Content-Digest") != img.digest.String() {
			t.Errorf("GET %s: headers %v", ref, r.Header)
		}
		r = e.do(request{method: "HEAD", path: "/v2/team/app/manifests/" + ref, auth: "basic"}).want(t, 200, "")
		if r.ContentLength != int64(len(img.manifest)) || r.Header.Get("Docker-Content-Digest") != img.digest.String() {
			t.Errorf("HEAD %s: headers %v", ref, r.Header)
		}
	}
	// PUT by digest, Docker media type from the body when Content-Type is generic.
	m := bytes.Replace(img.manifest, []byte(mediaTypeOCIManifest), []byte(mediaTypeDockerManifest), 1)
	md := digest.FromBytes(m)
	r := e.do(request{method: "PUT", path: "/v2/team/app/manifests/" + md.String(), body: m, auth: "basic",
		header: http.Header{"Content-Type": {"application/json"}}}).want(t, 201, "")
	if r.Header.Get("Location") != "/v2/team/app/manifests/"+md.String() || r.Header.Get("Docker-Content-Digest") != md.String() {
		t.Errorf("PUT headers %v", r.Header)
	}
	r = e.do(request{method: "GET", path: "/v2/team/app/manifests/" + md.String(), auth: "basic"}).want(t, 200, "")
	if r.Header.Get("Content-Type") != mediaTypeDockerManifest {
		t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
	}
	// Retagging moves the tag.
	e.do(request{method: "PUT", path: "/v2/team/app/manifests/v1", body: m, auth: "basic",
		header: http.Header{"Content-Type": {mediaTypeDockerManifest}}}).want(t, 201, "")
	r = e.do(request{method: "HEAD", path: "/v2/team/app/manifests/v1", auth: "basic"}).want(t, 200, "")
	if r.Header.Get("Docker-Content-Digest") != md.String() {
		t.Errorf("v1 -> %s", r.Header.Get("Docker-Content-Digest"))
	}

	e.do(request{method: "GET", path: "/v2/team/app/manifests/v2", auth: "basic"}).want(t, 404, "MANIFEST_UNKNOWN")
	e.do(request{method: "GET", path: "/v2/team/nothing/manifests/v1", auth: "basic"}).want(t, 404, "NAME_UNKNOWN")
	e.do(request{method: "GET", path: "/v2/team/app/manifests/" + digest.FromString("x").String(), auth: "basic"}).want(t, 404, "MANIFEST_UNKNOWN")

	// An escaped slash in the name (as the Azure Go SDK sends it) is the same repository.
	e.do(request{method: "GET", path: "/v2/team%2Fapp/manifests/v1", auth: "basic"}).want(t, 200, "")
}

func TestIndex(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := e.pushImage("app", "amd64", "1")
	child := digest.FromString("not pushed")
	index := func(ds ...digest.Digest) []byte {
		var ms []any
		for _, d := range ds {
			ms = append(ms, map[string]any{"mediaType": mediaTypeOCIManifest, "digest": d, "size": 10,
				"platform": map[string]string{"os": "linux", "architecture": "amd64"}})
		}
		b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaTypeOCIIndex, "manifests": ms})
		return b
	}
	hdr := http.Header{"Content-Type": {mediaTypeOCIIndex}}
	e.do(request{method: "PUT", path: "/v2/app/manifests/multi", body: index(img.digest, child), auth: "basic", header: hdr}).
		want(t, 400, "MANIFEST_BLOB_UNKNOWN")
	// A blob is not a manifest.
	e.do(request{method: "PUT", path: "/v2/app/manifests/multi", body: index(digest.FromBytes(img.config)), auth: "basic", header: hdr}).
		want(t, 400, "MANIFEST_BLOB_UNKNOWN")
	e.do(request{method: "PUT", path: "/v2/app/manifests/multi", body: index(img.digest), auth: "basic", header: hdr}).want(t, 201, "")
	r := e.do(request{method: "GET", path: "/v2/app/manifests/multi", auth: "basic"}).want(t, 200, "")
	if r.Header.Get("Content-Type") != mediaTypeOCIIndex {
		t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
	}
}

func TestManifestBlobUnknown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	config := e.pushBlob("app", []byte(`{}`))
	missing := digest.FromString("missing layer")
	m := manifestJSON(mediaTypeOCIManifest, config, 2, missing, 13)
	md := digest.FromBytes(m)
	r := e.do(request{method: "PUT", path: "/v2/app/manifests/v1", body: m, auth: "basic",
		header: http.Header{"Content-Type": {mediaTypeOCIManifest}}}).want(t, 400, "MANIFEST_BLOB_UNKNOWN")
	if !strings.Contains(string(r.body), missing.String()) {
		t.Errorf("body %s does not name the missing blob", r.body)
	}
	// Nothing is visible: no manifest, no tag, no repository, no manifest blob.
	e.do(request{method: "GET", path: "/v2/app/manifests/" + md.String(), auth: "basic"}).want(t, 404, "NAME_UNKNOWN")
	e.do(request{method: "GET", path: "/v2/app/tags/list", auth: "basic"}).want(t, 404, "NAME_UNKNOWN")
	if _, err := e.blobs.Stat(context.Background(), md); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("manifest blob stored: %v", err)
	}
	// A blob pushed to another repository does not count.
	layer := e.pushBlob("other", []byte("missing layer"))
	if layer != missing {
		t.Fatal("digest")
	}
	e.do(request{method: "PUT", path: "/v2/app/manifests/v1", body: m, auth: "basic",
		header: http.Header{"Content-Type": {mediaTypeOCIManifest}}}).want(t, 400, "MANIFEST_BLOB_UNKNOWN")
	e.pushBlob("app", []byte("missing layer"))
	e.do(request{method: "PUT", path: "/v2/app/manifests/v1", body: m, auth: "basic",
		header: http.Header{"Content-Type": {mediaTypeOCIManifest}}}).want(t, 201, "")
}

func TestManifestInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := e.pushImage("app", "v1", "1")
	oci := http.Header{"Content-Type": {mediaTypeOCIManifest}}
	put := func(ref string, body []byte, h http.Header) response {
		return e.do(request{method: "PUT", path: "/v2/app/manifests/" + ref, body: body, auth: "basic", header: h})
	}
	put("v2", []byte("{not json"), oci).want(t, 400, "MANIFEST_INVALID")
	put("v2", img.manifest, http.Header{"Content-Type": {mediaTypeDockerManifest}}).want(t, 400, "MANIFEST_INVALID")
	put("v2", []byte(`{"schemaVersion":1,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`), oci).want(t, 400, "MANIFEST_INVALID")
	put("v2", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`), oci).want(t, 400, "MANIFEST_INVALID")
	put("v2", []byte(`{"schemaVersion":2,"config":{"digest":"sha256:zz","size":1}}`), oci).want(t, 400, "MANIFEST_INVALID")
	put("v2", []byte(`{"schemaVersion":2}`), http.Header{"Content-Type": {"application/vnd.example+json"}}).want(t, 400, "MANIFEST_INVALID")
	put(digest.FromString("other").String(), img.manifest, oci).want(t, 400, "DIGEST_INVALID")
	put("bad!tag", img.manifest, oci).want(t, 400, "TAG_INVALID")
	big := append([]byte(`{"schemaVersion":2,"x":"`), bytes.Repeat([]byte("a"), maxManifestSize)...)
	put("v2", append(big, `"}`...), oci).want(t, 413, "MANIFEST_INVALID")
	e.do(request{method: "GET", path: "/v2/app/manifests/v2", auth: "basic"}).want(t, 404, "MANIFEST_UNKNOWN")
}

func TestTagsList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := e.pushImage("app", "a", "1")
	for _, tag := range []string{"d", "b", "c", "e"} {
		e.do(request{method: "PUT", path: "/v2/app/manifests/" + tag, body: img.manifest, auth: "basic",
			header: http.Header{"Content-Type": {mediaTypeOCIManifest}}}).want(t, 201, "")
	}
	e.pushImage("app-other", "zzz", "2") // a repository whose name extends "app"
	list := func(query string) (tagListWire, string) {
		r := e.do(request{method: "GET", path: "/v2/app/tags/list" + query, auth: "basic"}).want(t, 200, "")
		var l tagListWire
		if err := json.Unmarshal(r.body, &l); err != nil {
			t.Fatal(err)
		}
		return l, r.Header.Get("Link")
	}
	tests := []struct {
		query, tags, link string
	}{
		{"", "a,b,c,d,e", ""},
		{"?n=2", "a,b", `</v2/app/tags/list?last=b&n=2>; rel="next"`},
		{"?n=2&last=b", "c,d", `</v2/app/tags/list?last=d&n=2>; rel="next"`},
		{"?n=2&last=d", "e", ""},
		{"?last=c", "d,e", ""},
		{"?n=5", "a,b,c,d,e", ""},
		{"?n=0", "", ""},
		{"?last=e", "", ""},
	}
	for _, tc := range tests {
		l, link := list(tc.query)
		if l.Name != "app" || strings.Join(l.Tags, ",") != tc.tags || link != tc.link {
			t.Errorf("%q: %+v link %q; want %s link %q", tc.query, l, link, tc.tags, tc.link)
		}
	}
	e.do(request{method: "GET", path: "/v2/app/tags/list?n=x", auth: "basic"}).want(t, 400, "PAGINATION_NUMBER_INVALID")
	e.do(request{method: "GET", path: "/v2/none/tags/list", auth: "basic"}).want(t, 404, "NAME_UNKNOWN")
}

func TestStoredTables(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := e.pushImage("app", "v1", "1")
	ctx := context.Background()
	err := e.store.View(ctx, func(tx store.Tx) error {
		for _, k := range [][2]string{
			{"registry/berthtest/repositories", "app"},
			{"registry/berthtest/tags", "app:v1"},
			{"registry/berthtest/manifests", "app@" + img.digest.String()},
			{"registry/berthtest/blobs", "app@" + digest.FromBytes(img.layer).String()},
		} {
			if _, err := tx.Get(k[0], k[1]); err != nil {
				return fmt.Errorf("%s %s: %w", k[0], k[1], err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The manifest's bytes are a blob.
	if n, err := e.blobs.Stat(ctx, img.digest); err != nil || n != int64(len(img.manifest)) {
		t.Errorf("manifest blob: %d %v", n, err)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	good := Config{Name: "reg", LoginServer: "127.0.0.1:1", Blobs: nil}
	if _, err := New(good); err == nil {
		t.Error("New accepted a config without stores")
	}
	if _, err := New(Config{Name: "bad/name"}); err == nil {
		t.Error("New accepted a bad name")
	}
}
