package registry

// Fuzz tests for what clients control: manifests, paths and references,
// scopes. They run their seed corpora as normal tests; `go test -fuzz
// FuzzX ./internal/registry` explores further.

import (
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/blob"
)

func FuzzParseManifest(f *testing.F) {
	cfg := `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":2}`
	for _, seed := range []struct{ body, ct string }{
		{`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `,"layers":[` + cfg + `]}`, mediaTypeOCIManifest},
		{`{"schemaVersion":2,"config":` + cfg + `,"layers":[]}`, "application/json"},
		{`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + cfg + `]}`, ""},
		{`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`, mediaTypeDockerList},
		{`{"schemaVersion":2,"artifactType":"a/b","config":` + cfg + `,"subject":` + cfg + `,"annotations":{"k":"v"}}`, mediaTypeOCIManifest},
		{`{"schemaVersion":2,"config":{"digest":"sha512:00","size":-1}}`, mediaTypeDockerManifest},
		{`{"schemaVersion":1}`, "application/vnd.docker.distribution.manifest.v1+prettyjws"},
		{`[]`, ""}, {`null`, ""}, {``, "text/plain; charset=utf-8"},
	} {
		f.Add([]byte(seed.body), seed.ct)
	}
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		p, err := parseManifest(body, contentType)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("error %v is not an apiError", err)
			}
			return
		}
		if _, ok := isIndex[p.mediaType]; !ok {
			t.Fatalf("accepted media type %q", p.mediaType)
		}
		for _, d := range slices.Concat(p.blobs, p.manifests) {
			if blob.ValidateDigest(d) != nil {
				t.Fatalf("accepted reference %q", d)
			}
		}
		if isIndex[p.mediaType] && (len(p.blobs) > 0 || p.config != nil) {
			t.Fatal("an index with blobs")
		}
		if !isIndex[p.mediaType] && p.config == nil {
			t.Fatal("an image manifest without config")
		}
	})
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"/v2/", "/v2", "/v2/_catalog", "/v2/a/b/blobs/uploads/", "/v2/a/blobs/uploads/id", "/v2/a/manifests/latest",
		"/v2/a/referrers/sha256:" + strings.Repeat("0", 64), "/v2/a/tags/list", "/v2/blobs/blobs/blobs", "/v2//manifests/x",
		"/acr/v1/_catalog", "/acr/v1/a/b", "/acr/v1/a/_tags", "/acr/v1/a/_tags/v1", "/acr/v1/a/_manifests/sha256:00",
		"/acr/v1/", "/acr/v1/_tags", "/v2/a@b/manifests/c:d", "/v2/a:b/tags/list",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, ok := parsePath(path)
		if !ok {
			return
		}
		if _, ok := routes[rt.name]; !ok {
			t.Fatalf("%q: route %d has no endpoints", path, rt.name)
		}
		if validRepository(rt.repo) {
			// Store keys rely on repository names holding neither '@' nor ':'.
			if strings.ContainsAny(rt.repo, "@:") || len(rt.repo) > 256 {
				t.Fatalf("%q: valid repository %q", path, rt.repo)
			}
		}
		if err := checkReference(rt.ref); err == nil && rt.ref != "" && !isDigest(rt.ref) && !validTag(rt.ref) {
			t.Fatalf("%q: reference %q accepted", path, rt.ref)
		}
		if err := checkReference(rt.ref); err == nil && isDigest(rt.ref) {
			if blob.ValidateDigest(digestOf(rt.ref)) != nil {
				t.Fatalf("%q: digest %q accepted", path, rt.ref)
			}
		}
	})
}

func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{
		"repository:a/b:pull,push", "registry:catalog:*", "repository:a:pull repository:b:push",
		"repository:host:5000/a:pull", ":::", "a::b", "repository:a:", "", "  repository:x:delete,metadata_read  ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, scope string) {
		for _, a := range parseScopes([]string{scope}) {
			if a.Type == "" || a.Name == "" || len(a.Actions) == 0 || strings.ContainsAny(a.Type, ": \t\n") {
				t.Fatalf("%q: parsed %+v", scope, a)
			}
			again := parseScopes([]string{a.String()})
			if len(again) != 1 || again[0].Type != a.Type || again[0].Name != a.Name || !slices.Equal(again[0].Actions, a.Actions) {
				t.Fatalf("%q: %+v does not round-trip: %+v", scope, a, again)
			}
		}
	})
}
