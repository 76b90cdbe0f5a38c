package registry

// crane (go-containerregistry's crane package) and oras (oras-go v2), in
// process, push and pull against the registry on its product stores.

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
)

func TestCrane(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realStores(t))
	opts := []crane.Option{
		crane.WithAuth(&authn.Basic{Username: testUser, Password: testPassword}),
		crane.WithTransport(e.client.Transport),
	}
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := e.host + "/crane/app:v1"
	must(t, crane.Push(img, ref, opts...))
	must(t, crane.Copy(ref, e.host+"/crane/copy:v1", opts...)) // mounts across repositories
	must(t, crane.Tag(e.host+"/crane/copy:v1", "v2", opts...))
	got, err := crane.Pull(e.host+"/crane/copy:v2", opts...)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Errorf("pulled %s, pushed %s", d, want)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, err = b.ReadFrom(rc)
		rc.Close()
		ld, _ := l.Digest()
		if err != nil || digest.FromBytes(b.Bytes()).String() != ld.String() {
			t.Errorf("layer %s: %v", ld, err)
		}
	}
	tags, err := crane.ListTags(e.host+"/crane/copy", opts...)
	if err != nil || !slices.Equal(tags, []string{"v1", "v2"}) {
		t.Errorf("ListTags %v %v", tags, err)
	}
	repos, err := crane.Catalog(e.host, opts...)
	if err != nil || !slices.Equal(repos, []string{"crane/app", "crane/copy"}) {
		t.Errorf("Catalog %v %v", repos, err)
	}
	must(t, crane.Delete(e.host+"/crane/copy@"+want.String(), opts...))
	if _, err := crane.Head(e.host+"/crane/copy:v1", opts...); err == nil {
		t.Error("deleted manifest still there")
	}
}

func TestOras(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realStores(t))
	ctx := context.Background()
	repo, err := remote.NewRepository(e.host + "/oras/artifacts")
	if err != nil {
		t.Fatal(err)
	}
	repo.Client = &auth.Client{
		Client:     e.client,
		Cache:      auth.NewCache(),
		Credential: auth.StaticCredential(e.host, auth.Credential{Username: testUser, Password: testPassword}),
	}
	// Push a file artifact, tag it, then a signature whose subject it is.
	layerData := []byte("oras layer")
	layer := ocispec.Descriptor{MediaType: "application/vnd.example.file", Digest: digest.FromBytes(layerData), Size: int64(len(layerData))}
	must(t, repo.Push(ctx, layer, bytes.NewReader(layerData)))
	subject, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example.artifact",
		oras.PackManifestOptions{Layers: []ocispec.Descriptor{layer}})
	if err != nil {
		t.Fatalf("PackManifest: %v", err)
	}
	must(t, repo.Tag(ctx, subject, "v1"))
	sig, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example.sig",
		oras.PackManifestOptions{Subject: &subject, ManifestAnnotations: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatalf("PackManifest with subject: %v", err)
	}
	var found []ocispec.Descriptor
	must(t, repo.Referrers(ctx, subject, "application/vnd.example.sig", func(r []ocispec.Descriptor) error {
		found = append(found, r...)
		return nil
	}))
	if len(found) != 1 || found[0].Digest != sig.Digest || found[0].Annotations["k"] != "v" {
		t.Errorf("referrers %+v", found)
	}
	// Pull everything back into memory.
	dst := memory.New()
	desc, err := oras.Copy(ctx, repo, "v1", dst, "v1", oras.DefaultCopyOptions)
	if err != nil {
		t.Fatalf("oras.Copy: %v", err)
	}
	if desc.Digest != subject.Digest {
		t.Errorf("pulled %s, pushed %s", desc.Digest, subject.Digest)
	}
	rc, err := dst.Fetch(ctx, layer)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(rc)
	rc.Close()
	if !bytes.Equal(b.Bytes(), layerData) {
		t.Errorf("layer %q", b.Bytes())
	}
	var tags []string
	must(t, repo.Tags(ctx, "", func(ts []string) error { tags = append(tags, ts...); return nil }))
	if !slices.Equal(tags, []string{"v1"}) {
		t.Errorf("tags %v", tags)
	}
	must(t, repo.Delete(ctx, sig))
}
