// Package identity is berth's Entra-ID-compatible token service: one tenant,
// service principals with client secrets, OpenID Connect discovery (v1, v2
// and the ADFS shape az needs), a JWKS, the client-credentials grant, and
// RS256 JWT issue and verification written against crypto/rsa directly.
//
// The Service is an http.Handler for the paths listed in Routes (see Match);
// berth mounts it on the main ARM listener. Other components verify bearer
// tokens with Service.Verify and registry Basic credentials with
// Service.CheckClientSecret.
//
// State: tenants and principals live in the state store (tables
// "identity.tenants" and "identity.principals", JSON documents keyed by the
// lower-case tenant ID and client ID; secrets are kept as salted SHA-256
// hashes). The token-signing key lives on disk:
//
//	KeyDir/
//	└── token-signing-key.pem   RSA 2048, PKCS#8, mode 0600
//
// Issuers: a token's issuer is on the scheme and host:port the client used
// (MSAL compares the discovery document's issuer with its authority), so
// every loopback alias berth listens on is its own issuer:
//
//	https://HOST/{tenant}/v2.0   v2 endpoints
//	https://HOST/{tenant}/       v1 endpoints
//	https://HOST/adfs            ADFS endpoints (az login)
//
// Verify accepts all three on every host in Config.IssuerHosts.
package identity

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/store"
)

// Well-known development identities (docs/ARCHITECTURE.md).
const (
	DefaultTenantID     = "be127000-0000-4000-8000-000000000001"
	DefaultClientID     = "be127000-0000-4000-8000-000000000003"
	DefaultClientSecret = "berth-dev-secret-do-not-use-in-production"
	// DefaultObjectID is the object ID of the default service principal
	// (the oid and sub of its tokens).
	DefaultObjectID = "be127000-0000-4000-8000-000000000004"
	// DefaultAppObjectID is the object ID of the default service
	// principal's application object (Microsoft Graph's application id).
	DefaultAppObjectID = "be127000-0000-4000-8000-000000000005"
)

// Resource identifiers (token audiences) berth issues tokens for. ARM's two
// identifiers are emitted with a trailing slash and ACR's without, whatever
// form the request used.
const (
	AudienceARM       = "https://management.core.windows.net/"
	AudienceARMAlt    = "https://management.azure.com/"
	AudienceContainer = "https://containerregistry.azure.net"
	// AudienceGraph is Microsoft Graph's (berth's Graph subset, /v1.0/…).
	// Tokens asked for berth's own base URL (az uses the "graph" endpoint of
	// /metadata/endpoints as the resource) get it too.
	AudienceGraph = "https://graph.microsoft.com"
	// AudienceGraphAppID is Graph's application ID, the audience of v2
	// Graph tokens on Entra; Graph accepts it.
	AudienceGraphAppID = "00000003-0000-0000-c000-000000000000"
)

// resources maps a normalised resource identifier (see normAudience) to the
// audience berth puts in tokens.
var resources = map[string]string{
	normAudience(AudienceARM):       AudienceARM,
	normAudience(AudienceARMAlt):    AudienceARMAlt,
	normAudience(AudienceContainer): AudienceContainer,
	normAudience(AudienceGraph):     AudienceGraph,
	AudienceGraphAppID:              AudienceGraph,
}

// audienceFor is the audience of tokens for resource: one of resources, or
// Graph's for berth's own base URL on a host it serves.
func (s *Service) audienceFor(resource string) (string, bool) {
	if aud, ok := resources[normAudience(resource)]; ok {
		return aud, true
	}
	u, err := url.Parse(strings.TrimSpace(resource))
	if err == nil && u.Scheme == "https" && u.Host != "" && strings.Trim(u.Path, "/") == "" && u.RawQuery == "" &&
		len(s.hosts) > 0 && s.hostAllowed(u.Host) {
		return AudienceGraph, true
	}
	return "", false
}

const (
	tokenLifetime = time.Hour
	clockSkew     = 5 * time.Minute // tolerance for nbf and exp in Verify
)

// Errors returned by Verify. Every one of them also matches ErrInvalidToken,
// so callers may test the class they care about and fall back to the
// general one (ARM: ExpiredAuthenticationToken,
// InvalidAuthenticationTokenAudience, else InvalidAuthenticationToken).
var (
	ErrInvalidToken  = errors.New("invalid token")
	ErrTokenExpired  = errors.New("token expired")
	ErrBadSignature  = errors.New("token signature invalid")
	ErrWrongAudience = errors.New("token audience not accepted")
	// ErrWrongTenant: the token is from a tenant berth does not serve
	// (ARM: InvalidAuthenticationTokenTenant).
	ErrWrongTenant = errors.New("token from another tenant")
)

// Errors returned by CheckClientSecret (and behind the token endpoint's
// AADSTS700016 and AADSTS7000215).
var (
	ErrUnknownClient = errors.New("unknown client")
	ErrInvalidSecret = errors.New("invalid client secret")
)

// Config configures a Service.
type Config struct {
	// Store holds tenants and principals. Required.
	Store store.Store
	// KeyDir holds the token-signing key. Required.
	KeyDir string
	// Clock dates tokens and judges expiry. Nil means the wall clock.
	Clock clock.Clock
	// IssuerHosts are the host:port strings clients may reach the service
	// on, e.g. "127.0.0.1:7443", "localhost:7443", "[::1]:7443" (":443" may
	// be omitted). Discovery and token requests with another Host header are
	// refused, and Verify accepts only issuers on these hosts. Empty means
	// any host (tests).
	IssuerHosts []string
}

// Service is the token service.
type Service struct {
	store   store.Store
	clk     clock.Clock
	key     *signingKey
	hosts   map[string]bool
	tenants map[string]bool // lower-case tenant IDs

	mu   sync.RWMutex
	live livePrincipals
}

// New opens the token service, creating on first start the signing key, the
// default tenant and the default service principal. It is idempotent: a
// restart finds the same key and principal and changes nothing.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.KeyDir == "" {
		return nil, errors.New("identity: Config.Store and Config.KeyDir are required")
	}
	s := &Service{store: cfg.Store, clk: cfg.Clock, hosts: map[string]bool{}, tenants: map[string]bool{}}
	if s.clk == nil {
		s.clk = clock.Real{}
	}
	for _, h := range cfg.IssuerHosts {
		if h = normHost(h); h != "" {
			s.hosts[h] = true
		}
	}
	key, err := loadOrCreateKey(cfg.KeyDir)
	if err != nil {
		return nil, err
	}
	s.key = key
	if err := s.bootstrap(context.Background()); err != nil {
		return nil, err
	}
	if err := s.loadLive(context.Background()); err != nil {
		return nil, err
	}
	return s, nil
}

// normHost lower-cases a host[:port] and drops the default HTTPS port.
func normHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	return strings.TrimSuffix(h, ":443")
}

// normAudience is the form in which audiences are compared: lower case,
// without trailing slashes.
func normAudience(a string) string {
	return strings.TrimRight(strings.ToLower(strings.TrimSpace(a)), "/")
}

// hostAllowed reports whether tokens may be issued for (and verified from)
// host.
func (s *Service) hostAllowed(host string) bool {
	return len(s.hosts) == 0 || s.hosts[normHost(host)]
}

func (s *Service) knownTenant(id string) bool { return s.tenants[strings.ToLower(id)] }

// tokenError is a Verify failure: Kind is one of the Err* values above.
type tokenError struct {
	kind error
	msg  string
}

func (e *tokenError) Error() string { return e.kind.Error() + ": " + e.msg }

func (e *tokenError) Unwrap() []error {
	if e.kind == ErrInvalidToken {
		return []error{ErrInvalidToken}
	}
	return []error{e.kind, ErrInvalidToken}
}

func tokenErr(kind error, format string, args ...any) error {
	return &tokenError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
