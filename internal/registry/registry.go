// Package registry serves one ACR-like container registry at its login server:
// the OCI Distribution API 1.1 under /v2/ (with referrers and the catalog),
// ACR's data-plane API under /acr/v1/, and ACR's token endpoints
// /oauth2/token and /oauth2/exchange.
//
// Content lives in a blob.Store, once per registry: layers, configs and
// manifests alike, by digest, verified while streaming in and committed
// atomically. Everything else lives in the state store, in tables named
// "registry/<name>/<table>" (see meta.go): which repositories exist, which
// blobs and manifests each links, tags, referrers, uploads in progress, and
// ACR's changeable attributes. A blob or manifest becomes visible in a
// repository only when the store transaction that links it commits, after
// the content is committed, so clients never see partial uploads; a
// cross-repository mount (with or without from=) only adds a link. Garbage
// collection (gc.go) removes unreferenced content and abandoned uploads
// online, after a grace period.
//
// Every /v2/ and /acr/v1/ request is authenticated for the scope its route
// needs (routes.go): an access token from /oauth2/token (RS256 JWTs signed by
// the registry's key, in ACR's claim format), Basic auth with a password the
// Authenticator accepts, or Basic auth with NullUser and a registry-issued
// token. Missing or insufficient credentials get ACR's Bearer challenge. When
// Config.AnonymousPull says so, requests without credentials may pull and
// read metadata (but not list the catalog), and the token endpoints issue
// anonymous tokens.
//
// Tokens are bound to the registry's incarnation (Config.ID, claim rid) and
// live no longer than what they stand for: every use of one asks the
// Authenticator whether its credential is still current (Current), or, for
// an anonymous token, whether anonymous pull is still allowed. Refresh
// tokens come only from a password or an Entra ID token, never from another
// token, and a token obtained with a token expires no later than it.
//
// Changeable attributes (ACR's deleteEnabled, writeEnabled, listEnabled,
// readEnabled on repositories, tags and manifests) are enforced: a write to a
// write-disabled repository, or moving a write-disabled tag or a tag of a
// write-disabled manifest, is refused with 403 DENIED; deleting what is
// delete- or write-disabled (ACR's "locked"), or anything in such a
// repository, with 405 UNSUPPORTED; pulling what is read-disabled with 403
// DENIED; list-disabled items are left out of listings but stay readable.
//
// Durability: a blob, manifest, tag or attribute change is synced before it
// is acknowledged. The bytes of an upload still in progress are not synced
// per chunk; after a crash the upload's status (GET on its location) reports
// what survived, and the client resumes from there, as OCI allows.
package registry

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/berth-dev/berth/internal/blob"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/store"
)

// Config configures one registry.
type Config struct {
	// Name is the registry's name (ACR: 5-50 letters and digits). It
	// namespaces the registry's tables in Store.
	Name string
	// LoginServer is the host:port clients use, e.g. "127.0.0.1:5001". It is
	// the tokens' audience and the challenge's service and realm host.
	LoginServer string
	// ID identifies this incarnation of the registry: opaque, stable across
	// restarts, never given to another registry (e.g. the registry
	// resource's unique id). Every token carries it (claim rid) and is
	// accepted only by a registry with the same ID, so that a registry
	// created later on a deleted one's login server (all registries share
	// SigningKey) refuses the deleted one's tokens. Empty (tests): tokens
	// carry no rid and only such tokens are accepted.
	ID string
	// Blobs holds this registry's content.
	Blobs blob.Store
	// Store holds this registry's metadata.
	Store store.Store
	// Auth checks usernames and passwords, and Entra ID tokens (exchange).
	Auth Authenticator
	// SigningKey signs and verifies the registry's tokens; KeyID is their kid.
	SigningKey *rsa.PrivateKey
	KeyID      string
	// Clock tells the time for token lifetimes and records; nil means the
	// wall clock.
	Clock clock.Clock
	// Logger receives request errors; nil means slog.Default().
	Logger *slog.Logger
	// Token lifetimes; zero means DefaultAccessTokenTTL / DefaultRefreshTokenTTL.
	AccessTokenTTL, RefreshTokenTTL time.Duration
	// AnonymousPull tells whether clients without credentials may pull and
	// read metadata (ARM's anonymousPullEnabled). It is asked on every
	// anonymous request and every use of an anonymous token, so it may
	// change at runtime; nil means never.
	AnonymousPull func() bool
	// LinkGrace is how long garbage collection keeps a blob link no
	// manifest references after the blob was last pushed, mounted or read
	// (HEAD or GET) in its repository, so that a slow or resumed push's
	// manifest still finds its layers; zero means DefaultLinkGrace.
	LinkGrace time.Duration
}

// Registry serves one registry. Create it with New.
type Registry struct {
	name        string
	loginServer string
	id          string
	blobs       blob.Store
	store       store.Store
	auth        Authenticator
	signingKey  *rsa.PrivateKey
	keyID       string
	tokenHeader string // encoded JWT header, the same for every token
	clock       clock.Clock
	log         *slog.Logger
	accessTTL   time.Duration
	refreshTTL  time.Duration
	linkGrace   time.Duration
	tables      tables
	anonymous   func() bool

	tokens        tokenCache  // verified tokens
	manifestCache byteCache   // manifest bytes by digest
	locks         digestLocks // pushes against garbage collection
	gcState       gcState     // what the collector has seen between passes
}

var registryNamePattern = regexp.MustCompile(`^[a-zA-Z0-9]{1,50}$`)

// New returns a registry for cfg.
func New(cfg Config) (*Registry, error) {
	switch {
	case !registryNamePattern.MatchString(cfg.Name):
		return nil, errors.New("registry: Name must be 1-50 letters and digits")
	case cfg.LoginServer == "":
		return nil, errors.New("registry: LoginServer is required")
	case cfg.Blobs == nil || cfg.Store == nil:
		return nil, errors.New("registry: Blobs and Store are required")
	case cfg.Auth == nil:
		return nil, errors.New("registry: Auth is required")
	case cfg.SigningKey == nil:
		return nil, errors.New("registry: SigningKey is required")
	}
	r := &Registry{
		name:        cfg.Name,
		loginServer: cfg.LoginServer,
		id:          cfg.ID,
		blobs:       cfg.Blobs,
		store:       cfg.Store,
		auth:        cfg.Auth,
		signingKey:  cfg.SigningKey,
		keyID:       cfg.KeyID,
		tokenHeader: encodeHeader(cfg.KeyID),
		clock:       cfg.Clock,
		log:         cfg.Logger,
		accessTTL:   cfg.AccessTokenTTL,
		refreshTTL:  cfg.RefreshTokenTTL,
		linkGrace:   cfg.LinkGrace,
		tables:      newTables(cfg.Name),
		anonymous:   cfg.AnonymousPull,
	}
	if r.anonymous == nil {
		r.anonymous = func() bool { return false }
	}
	if r.clock == nil {
		r.clock = clock.Real{}
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.accessTTL == 0 {
		r.accessTTL = DefaultAccessTokenTTL
	}
	if r.refreshTTL == 0 {
		r.refreshTTL = DefaultRefreshTokenTTL
	}
	if r.linkGrace == 0 {
		r.linkGrace = DefaultLinkGrace
	}
	return r, nil
}

// Handler returns the registry's HTTP handler, to be served over TLS at the
// login server. It does its own routing: a ServeMux would clean paths and
// redirect, which registry clients do not expect.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		h.Set(headerRequestID, uuid.NewString())
		h.Set("Docker-Distribution-Api-Version", "registry/2.0")
		var err error
		switch p := req.URL.Path; {
		case p == "/oauth2/token":
			err = r.tokenEndpoint(w, req)
		case p == "/oauth2/exchange":
			err = r.exchangeEndpoint(w, req)
		default:
			err = r.dispatch(w, req)
		}
		if err != nil {
			r.writeError(w, req, err)
		}
	})
}

const headerRequestID = "X-Ms-Request-Id"

// dispatch routes a /v2/ or /acr/v1/ request, authenticates it for the
// access its route needs, and runs the route's handler.
func (r *Registry) dispatch(w http.ResponseWriter, req *http.Request) error {
	rt, ok := parsePath(req.URL.Path)
	if !ok {
		return newError(errNotFound)
	}
	ep, ok := routes[rt.name][req.Method]
	if !ok {
		return newError(errMethodNotAllowed)
	}
	var need *Access
	switch {
	case rt.isCatalog():
		need = &Access{Type: "registry", Name: "catalog", Actions: ep.actions}
	case rt.name != routeBase:
		if !validRepository(rt.repo) {
			return errorf(errNameInvalid, "invalid repository name %q", rt.repo).withDetail(map[string]string{"name": rt.repo})
		}
		need = &Access{Type: "repository", Name: rt.repo, Actions: ep.actions}
	}
	g, err := r.authenticate(req, need)
	if err != nil {
		return err
	}
	return ep.handle(r, w, req, &call{route: rt, grant: g})
}

// copyBufs holds buffers for copying request bodies into uploads.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyBody appends a request body to an upload. A failure to read the body
// is the client's (BLOB_UPLOAD_INVALID); a failure to write is internal.
func copyBody(w blob.Writer, body io.Reader) (int64, error) {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	src := &bodyReader{r: body}
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, src, *buf)
	if src.err != nil {
		return n, errorf(errBlobUploadInvalid, "reading request body failed").because(src.err)
	}
	return n, err
}

// bodyReader remembers the error of a read that failed.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// isDigest reports whether ref looks like a digest rather than a tag.
func isDigest(ref string) bool { return strings.Contains(ref, ":") }

// Name returns the registry's name.
func (r *Registry) Name() string { return r.name }

// writeJSON sends v as a JSON response body.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}
