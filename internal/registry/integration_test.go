package registry

// End-to-end tests: real clients (go-containerregistry, containerd's resolver,
// skopeo) against the registry on its product stores (blob/fs, store/bolt).

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ggcrOptions are remote options with the test credentials and TLS trust.
func (e *env) ggcrOptions(user, pass string) []remote.Option {
	return []remote.Option{
		remote.WithAuth(&authn.Basic{Username: user, Password: pass}),
		remote.WithTransport(e.client.Transport),
	}
}

// ggcrPush pushes a random image to repo:tag and returns it.
func (e *env) ggcrPush(repo, tag string) v1.Image {
	e.t.Helper()
	img, err := random.Image(2048, 3)
	if err != nil {
		e.t.Fatal(err)
	}
	ref, err := name.ParseReference(e.host + "/" + repo + ":" + tag)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := remote.Write(ref, img, e.ggcrOptions(testUser, testPassword)...); err != nil {
		e.t.Fatalf("remote.Write: %v", err)
	}
	return img
}

func TestGoContainerRegistry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realStores(t))
	img := e.ggcrPush("ggcr/app", "v1")
	want, _ := img.Digest()

	opts := e.ggcrOptions(testUser, testPassword)
	ref, _ := name.ParseReference(e.host + "/ggcr/app:v1")
	got, err := remote.Image(ref, opts...)
	if err != nil {
		t.Fatalf("remote.Image: %v", err)
	}
	if d, _ := got.Digest(); d != want {
		t.Errorf("pulled digest %s, pushed %s", d, want)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		ld, _ := l.Digest()
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		d, err := digest.FromReader(rc)
		rc.Close()
		if err != nil || d.String() != ld.String() {
			t.Errorf("layer %s read back as %s (%v)", ld, d, err)
		}
	}
	if _, err := got.ConfigFile(); err != nil {
		t.Errorf("config: %v", err)
	}

	// An index, whose children are pushed first.
	idx, err := random.Index(1024, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	iref, _ := name.ParseReference(e.host + "/ggcr/app:multi")
	if err := remote.WriteIndex(iref, idx, opts...); err != nil {
		t.Fatalf("remote.WriteIndex: %v", err)
	}
	gotIdx, err := remote.Index(iref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	wi, _ := idx.Digest()
	if gi, _ := gotIdx.Digest(); gi != wi {
		t.Errorf("index digest %s, want %s", gi, wi)
	}

	tags, err := remote.List(ref.Context(), opts...)
	if err != nil || strings.Join(tags, ",") != "multi,v1" {
		t.Errorf("tags %v %v", tags, err)
	}

	// ggcr goes through the Bearer token flow: GET /oauth2/token with Basic.
	if !slices.Contains(e.requests(), "GET /oauth2/token 200") {
		t.Errorf("no token request among %v", e.requests())
	}

	// Wrong password.
	_, err = remote.Image(ref, e.ggcrOptions(testUser, "wrong")...)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: %v", err)
	}
}

func TestContainerdResolver(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realStores(t))
	img := e.ggcrPush("ctd/app", "v1")
	want, _ := img.Digest()
	ctx := context.Background()

	fetch := func(t *testing.T, user, secret string, opts ...docker.RegistryOpt) {
		authorizer := docker.NewDockerAuthorizer(
			docker.WithAuthClient(e.client),
			docker.WithAuthCreds(func(host string) (string, string, error) {
				if host != e.host {
					t.Errorf("credentials asked for host %q", host)
				}
				return user, secret, nil
			}))
		resolver := docker.NewResolver(docker.ResolverOptions{
			Hosts: docker.ConfigureDefaultRegistries(append([]docker.RegistryOpt{docker.WithClient(e.client), docker.WithAuthorizer(authorizer)}, opts...)...),
		})
		refName, desc, err := resolver.Resolve(ctx, e.host+"/ctd/app:v1")
		if err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		if desc.Digest.String() != want.String() {
			t.Fatalf("resolved %s, want %s", desc.Digest, want)
		}
		fetcher, err := resolver.Fetcher(ctx, refName)
		if err != nil {
			t.Fatal(err)
		}
		mb := fetchAll(t, ctx, fetcher, desc)
		var m ocispec.Manifest
		if err := json.Unmarshal(mb, &m); err != nil {
			t.Fatal(err)
		}
		if len(m.Layers) != 3 {
			t.Fatalf("manifest %s", mb)
		}
		fetchAll(t, ctx, fetcher, m.Layers[1])
		fetchAll(t, ctx, fetcher, m.Config)
	}

	t.Run("password", func(t *testing.T) {
		fetch(t, testUser, testPassword)
		// containerd posts the password grant first.
		if !slices.Contains(e.requests(), "POST /oauth2/token 200") {
			t.Errorf("no POST token request among %v", e.requests())
		}
	})
	t.Run("plain http", func(t *testing.T) {
		// containerd 1.6 (Debian's ctr) speaks plain HTTP to a loopback
		// registry and never tries https itself: the port answers with a
		// redirect to https, which Go's client follows.
		fetch(t, testUser, testPassword, docker.WithPlainHTTP(docker.MatchAllHosts))
		if !slices.Contains(e.requests(), "HEAD /v2/ctd/app/manifests/v1 200") {
			t.Errorf("the manifest was not served over https: %v", e.requests())
		}
	})
	t.Run("refresh token", func(t *testing.T) {
		form := url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword},
			"service": {e.host}, "access_type": {"offline"}}
		r := e.postToken(form).want(t, 200, "")
		var tr tokenResponseWire
		if err := json.Unmarshal(r.body, &tr); err != nil {
			t.Fatal(err)
		}
		fetch(t, "", tr.RefreshToken) // no username: containerd sends grant_type=refresh_token
		fetch(t, NullUser, tr.RefreshToken)
	})
}

// fetchAll fetches desc and checks its digest.
func fetchAll(t *testing.T, ctx context.Context, f interface {
	Fetch(context.Context, ocispec.Descriptor) (io.ReadCloser, error)
}, desc ocispec.Descriptor) []byte {
	t.Helper()
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		t.Fatalf("Fetch %s: %v", desc.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(b); got != desc.Digest || int64(len(b)) != desc.Size {
		t.Fatalf("fetched %s (%d bytes), want %s (%d)", got, len(b), desc.Digest, desc.Size)
	}
	return b
}

// TestSkopeo copies an image inside the registry with skopeo (Debian 1.9.3 in
// CI), which pulls with one token and pushes with another.
func TestSkopeo(t *testing.T) {
	t.Parallel()
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatal("skopeo is not installed: run `make test` (it installs skopeo) or apt-get install skopeo")
	}
	e := newEnv(t, realStores(t))
	img := e.ggcrPush("skopeo/src", "v1")
	want, _ := img.Digest()

	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	policy := filepath.Join(dir, "policy.json")
	must(t, os.Mkdir(certDir, 0o755))
	certPEM := e.caPEM
	must(t, os.WriteFile(filepath.Join(certDir, "ca.crt"), certPEM, 0o644))
	must(t, os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644))

	run := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a hang guard, not a timing check
		defer cancel()
		cmd := exec.CommandContext(ctx, skopeo, append([]string{"--policy", policy}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+dir, "REGISTRY_AUTH_FILE="+filepath.Join(dir, "auth.json"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	creds := testUser + ":" + testPassword
	src, dst := "docker://"+e.host+"/skopeo/src:v1", "docker://"+e.host+"/skopeo/dst:v1"
	run("copy", "--src-creds", creds, "--dest-creds", creds, "--src-cert-dir", certDir, "--dest-cert-dir", certDir, src, dst)

	out := run("inspect", "--creds", creds, "--cert-dir", certDir, dst)
	var info struct{ Digest string }
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("inspect output %s: %v", out, err)
	}
	if info.Digest != want.String() {
		t.Errorf("copied digest %s, want %s", info.Digest, want)
	}
	out = run("list-tags", "--creds", creds, "--cert-dir", certDir, "docker://"+e.host+"/skopeo/dst")
	if !strings.Contains(string(out), `"v1"`) {
		t.Errorf("list-tags: %s", out)
	}
	// Pull into a local directory and push it back from there.
	layout := "dir:" + filepath.Join(dir, "layout")
	run("copy", "--src-creds", creds, "--src-cert-dir", certDir, dst, layout)
	back := "docker://" + e.host + "/skopeo/back:v1"
	run("copy", "--dest-creds", creds, "--dest-cert-dir", certDir, layout, back)
	out = run("inspect", "--creds", creds, "--cert-dir", certDir, back)
	if err := json.Unmarshal(out, &info); err != nil || info.Digest != want.String() {
		t.Errorf("pushed back %s (%v), want %s", info.Digest, err, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
