package testimage_test

import (
	"archive/tar"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/internal/testutil/testimage"
)

func TestBuildAndPush(t *testing.T) {
	srv := httptest.NewTLSServer(registry.New())
	defer srv.Close()

	img := testimage.Build(t)
	ref := strings.TrimPrefix(srv.URL, "https://") + "/test/app:v1"
	digest := testimage.Push(t, img, ref, nil, srv.Client().Transport)
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("digest = %q", digest)
	}

	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(r, remote.WithTransport(srv.Client().Transport))
	if err != nil {
		t.Fatalf("pull back: %v", err)
	}
	cfg, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if e := strings.Join(cfg.Config.Entrypoint, " "); e != "/app" {
		t.Errorf("entrypoint = %q", e)
	}
	if c := strings.Join(cfg.Config.Cmd, " "); c != "serve" {
		t.Errorf("cmd = %q", c)
	}
	layers, err := got.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	names := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
	if !names["app"] {
		t.Errorf("layer lacks /app: %v", names)
	}

	// A second Build is the cached image.
	d1, _ := img.Digest()
	d2, _ := testimage.Build(t).Digest()
	if d1 != d2 {
		t.Errorf("Build not cached: %s != %s", d1, d2)
	}
}
