// Package testimage builds berth's test container image and pushes it to a
// registry. Tests of the runtime and end-to-end tests run it.
//
// The image has one layer:
//
//	/app            static Go program from ./app (CGO_ENABLED=0); its modes
//	                are documented there: serve (default), echo, exit, sleep,
//	                print-env, fetch, status, read, write, mkdir, stat, id, alloc
//	/bin/busybox    Debian's static busybox, when the host has /bin/busybox
//	/bin/{sh,echo,cat,sleep,wget,true,false,stty} -> busybox
//	/tmp            mode 1777
//
// and its config has Entrypoint ["/app"], Cmd ["serve"], PATH=/bin. The image
// is built once per process (Image and Build cache it); building needs the
// go command and the berth source tree.
package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// busyboxLinks are the commands linked to /bin/busybox in the image.
var busyboxLinks = []string{"sh", "echo", "cat", "sleep", "wget", "true", "false", "stty"}

var built struct {
	once sync.Once
	img  v1.Image
	err  error
}

// Image returns the test image, building it on first use in this process.
// Programs that are not tests (benchmarks) use it; tests use Build.
func Image() (v1.Image, error) {
	built.once.Do(func() { built.img, built.err = build() })
	if built.err != nil {
		return nil, fmt.Errorf("testimage: %w", built.err)
	}
	return built.img, nil
}

// Build returns the test image (see Image), failing the test if it cannot
// be built.
func Build(t testing.TB) v1.Image {
	t.Helper()
	img, err := Image()
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// PushImage writes img to the registry under ref (for example
// "127.0.0.1:5000/test/app:v1") and returns the manifest digest
// ("sha256:..."). auth may be nil (anonymous); transport may be nil
// (http.DefaultTransport), or carry the registry's TLS trust.
func PushImage(img v1.Image, ref string, auth authn.Authenticator, transport http.RoundTripper) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("testimage: parse %q: %w", ref, err)
	}
	if auth == nil {
		auth = authn.Anonymous
	}
	if transport == nil {
		transport = http.DefaultTransport
	}
	if err := remote.Write(r, img, remote.WithAuth(auth), remote.WithTransport(transport)); err != nil {
		return "", fmt.Errorf("testimage: push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("testimage: digest: %w", err)
	}
	return d.String(), nil
}

// Push is PushImage for tests: it fails the test on error.
func Push(t testing.TB, img v1.Image, ref string, auth authn.Authenticator, transport http.RoundTripper) string {
	t.Helper()
	d, err := PushImage(img, ref, auth, transport)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func build() (v1.Image, error) {
	bin, err := compileApp()
	if err != nil {
		return nil, err
	}
	layerTar, err := rootfs(bin)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithCompressedCaching, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS = "linux"
	cfg.Architecture = goruntime.GOARCH
	cfg.Config.Entrypoint = []string{"/app"}
	cfg.Config.Cmd = []string{"serve"}
	cfg.Config.Env = []string{"PATH=/bin"}
	cfg.Config.WorkingDir = "/"
	cfg.Config.ExposedPorts = map[string]struct{}{"8080/tcp": {}}
	return mutate.ConfigFile(img, cfg)
}

// compileApp builds ./app as a static linux binary and returns its bytes.
func compileApp() ([]byte, error) {
	_, file, _, ok := goruntime.Caller(0)
	if !ok {
		return nil, fmt.Errorf("cannot locate the testimage source")
	}
	src := filepath.Join(filepath.Dir(file), "app")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(goruntime.GOROOT(), "bin", "go")
	}
	dir, err := os.MkdirTemp("", "berth-testimage-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "app")
	cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goruntime.GOARCH)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %v\n%s", src, err, msg)
	}
	return os.ReadFile(out)
}

// rootfs returns the image's single layer as an uncompressed tar.
func rootfs(app []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0) // reproducible digests
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: mtime})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := file("app", 0o755, app); err != nil {
		return nil, err
	}
	if err := dir("tmp/", 0o1777); err != nil {
		return nil, err
	}
	if err := dir("bin/", 0o755); err != nil {
		return nil, err
	}
	if bb, err := os.ReadFile("/bin/busybox"); err == nil {
		if err := file("bin/busybox", 0o755, bb); err != nil {
			return nil, err
		}
		for _, l := range busyboxLinks {
			h := &tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + l, Linkname: "busybox", Mode: 0o777, ModTime: mtime}
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
