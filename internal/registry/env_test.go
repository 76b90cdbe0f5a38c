package registry

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/blob"
	blobfs "github.com/berth-dev/berth/internal/blob/fs"
	blobmem "github.com/berth-dev/berth/internal/blob/memory"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/pki"
	"github.com/berth-dev/berth/internal/store"
	"github.com/berth-dev/berth/internal/store/bolt"
	storemem "github.com/berth-dev/berth/internal/store/memory"
)

const (
	testUser     = "be127000-0000-4000-8000-000000000003"
	testPassword = "berth-dev-secret-do-not-use-in-production"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

// signingKey returns one RSA key shared by every test of the binary: key
// generation is slow on small machines.
func signingKey(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

// env is one registry served over TLS on a loopback port, on memory stores.
type env struct {
	t      testing.TB
	reg    *Registry
	srv    *http.Server
	caPEM  []byte // the CA the server's certificate chains to
	host   string // login server, 127.0.0.1:PORT
	base   string // https://host
	client *http.Client
	clock  *clock.Fake
	blobs  blob.Store
	store  store.Store

	mu   sync.Mutex
	seen []string
}

type envOption func(*Config)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		t:     t,
		host:  ln.Addr().String(),
		clock: clock.NewFake(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)),
		blobs: blobmem.New(),
		store: storemem.New(),
	}
	cfg := Config{
		Name:        "berthtest",
		LoginServer: e.host,
		Blobs:       e.blobs,
		Store:       e.store,
		Auth:        StaticAuth{Username: testUser, Password: testPassword},
		SigningKey:  signingKey(t),
		KeyID:       "test-key",
		Clock:       e.clock,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	e.blobs, e.store = cfg.Blobs, cfg.Store
	e.reg, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Served as the product serves it: TLS and plain HTTP sniffed on one
	// port (Listen), plain HTTP redirected to https (HTTPSOnly).
	p, err := pki.LoadOrCreate(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.caPEM = p.CAPEM()
	e.srv = &http.Server{Handler: HTTPSOnly(e.host, e.record(e.reg.Handler())), ReadHeaderTimeout: 30 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = e.srv.Serve(Listen(ln, p.TLSConfig()))
	}()
	t.Cleanup(func() { e.srv.Close(); <-served })
	e.base = "https://" + e.host
	e.client = &http.Client{Transport: &http.Transport{TLSClientConfig: p.ClientTLSConfig()}}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// record wraps h to remember each request's method, path and status.
func (e *env) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, req)
		e.mu.Lock()
		e.seen = append(e.seen, fmt.Sprintf("%s %s %d", req.Method, req.URL.Path, sw.status))
		e.mu.Unlock()
	})
}

// requests returns the requests served so far, as "METHOD /path status".
func (e *env) requests() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.seen)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// realStores makes the registry use the product's stores, blob/fs and
// store/bolt, under the test's temporary directory.
func realStores(t testing.TB) envOption {
	return func(c *Config) {
		dir := t.TempDir()
		blobs, err := blobfs.New(filepath.Join(dir, "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := bolt.Open(filepath.Join(dir, "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		c.Blobs, c.Store = blobs, st
	}
}

// request describes one HTTP call of a test.
type request struct {
	method, path string
	body         []byte
	header       http.Header
	auth         string // Authorization value; "basic" means the test credentials
}

type response struct {
	*http.Response
	body []byte
}

func (e *env) do(r request) response {
	e.t.Helper()
	u := r.path
	if !strings.HasPrefix(u, "https://") {
		u = e.base + r.path
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, u, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	switch r.auth {
	case "":
	case "basic":
		req.SetBasicAuth(testUser, testPassword)
	default:
		req.Header.Set("Authorization", r.auth)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp, b}
}

// want fails the test unless the response has the status (and, for errors,
// the OCI error code, when code is not "").
func (r response) want(t testing.TB, status int, code string) response {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.body)
	}
	if code != "" {
		var eb errorsBody
		if err := json.Unmarshal(r.body, &eb); err != nil || len(eb.Errors) == 0 {
			t.Fatalf("%s %s: error body %q is not an OCI error: %v", r.Request.Method, r.Request.URL.Path, r.body, err)
		}
		if eb.Errors[0].Code != code {
			t.Fatalf("%s %s: code %s, want %s; body %s", r.Request.Method, r.Request.URL.Path, eb.Errors[0].Code, code, r.body)
		}
	}
	return r
}

// token fetches an access token for scopes with the test credentials.
func (e *env) token(scopes ...string) string {
	e.t.Helper()
	q := url.Values{"service": {e.host}, "scope": scopes}
	r := e.do(request{method: "GET", path: "/oauth2/token?" + q.Encode(), auth: "basic"}).want(e.t, 200, "")
	var tr tokenResponseWire
	if err := json.Unmarshal(r.body, &tr); err != nil {
		e.t.Fatal(err)
	}
	if tr.Token == "" || tr.Token != tr.AccessToken {
		e.t.Fatalf("token response %s", r.body)
	}
	return tr.AccessToken
}

func bearer(tok string) string { return "Bearer " + tok }

// pushBlob uploads content to repo monolithically and returns its digest.
func (e *env) pushBlob(repo string, content []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(content)
	e.do(request{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + d.String(), body: content, auth: "basic"}).want(e.t, 201, "")
	return d
}

// image is a minimal manifest with a config and one layer, already pushed.
type image struct {
	config, layer []byte
	manifest      []byte
	digest        digest.Digest
}

func (e *env) pushImage(repo, tag string, seed string) image {
	e.t.Helper()
	img := image{config: []byte(`{"architecture":"amd64","os":"linux","seed":"` + seed + `"}`), layer: []byte("layer " + seed)}
	cd, ld := e.pushBlob(repo, img.config), e.pushBlob(repo, img.layer)
	img.manifest = manifestJSON(mediaTypeOCIManifest, cd, len(img.config), ld, len(img.layer))
	img.digest = digest.FromBytes(img.manifest)
	e.do(request{method: "PUT", path: "/v2/" + repo + "/manifests/" + tag, body: img.manifest, auth: "basic",
		header: http.Header{"Content-Type": {mediaTypeOCIManifest}}}).want(e.t, 201, "")
	return img
}

func manifestJSON(mt string, config digest.Digest, configSize int, layer digest.Digest, layerSize int) []byte {
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     mt,
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": configSize},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layerSize}},
	}
	b, _ := json.Marshal(m)
	return b
}

// decodeClaims decodes a token payload the way the Azure SDKs do: with the
// standard base64 alphabet.
func decodeClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tok)
	}
	b, err := base64.StdEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("payload %q does not decode with base64.StdEncoding: %v", parts[1], err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
