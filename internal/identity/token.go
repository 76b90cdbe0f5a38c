package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Claims are the claims of a berth access token (a subset of Entra's).
type Claims struct {
	Audience  string `json:"aud"`
	Issuer    string `json:"iss"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
	TenantID  string `json:"tid"`
	ObjectID  string `json:"oid"`
	Subject   string `json:"sub"`
	AppID     string `json:"appid"`
	AppIDACR  string `json:"appidacr"` // "1": authenticated with a client secret
	AZP       string `json:"azp"`
	AZPACR    string `json:"azpacr"`
	IDType    string `json:"idtyp"` // "app"
	Version   string `json:"ver"`   // "1.0" (v1 and ADFS endpoints) or "2.0"
	UTI       string `json:"uti"`
	JTI       string `json:"jti"`
	// MIResID is a managed identity's resource id (Entra's xms_mirid).
	MIResID string `json:"xms_mirid,omitempty"`
}

// ExpiresAt returns exp as a time.
func (c *Claims) ExpiresAt() time.Time { return time.Unix(c.Expiry, 0) }

// issuer flavours.
const (
	flavourV1   = "v1"
	flavourV2   = "v2"
	flavourADFS = "adfs"
)

// issuerURL is the issuer of the given flavour for base (scheme://host).
func issuerURL(base, tenant, flavour string) string {
	switch flavour {
	case flavourADFS:
		return base + "/adfs"
	case flavourV1:
		return base + "/" + tenant + "/"
	default:
		return base + "/" + tenant + "/v2.0"
	}
}

// issue signs an access token for p with audience aud.
func (s *Service) issue(p Principal, aud, base, flavour string) (string, *Claims, error) {
	now := s.clk.Now()
	id := uuid.NewString()
	ver := "1.0"
	if flavour == flavourV2 {
		ver = "2.0"
	}
	c := &Claims{
		Audience:  aud,
		Issuer:    issuerURL(base, p.TenantID, flavour),
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		Expiry:    now.Add(tokenLifetime).Unix(),
		TenantID:  p.TenantID,
		ObjectID:  p.ObjectID,
		Subject:   p.ObjectID,
		AppID:     p.ClientID,
		AppIDACR:  "1",
		AZP:       p.ClientID,
		AZPACR:    "1",
		IDType:    "app",
		Version:   ver,
		UTI:       strings.ReplaceAll(id, "-", ""),
		JTI:       id,
		MIResID:   p.ResourceID,
	}
	if p.Kind == KindManagedIdentity {
		c.AppIDACR, c.AZPACR = "2", "2" // as Entra marks managed identities
	}
	tok, err := signJWT(s.key, c)
	if err != nil {
		return "", nil, fmt.Errorf("identity: signing token: %w", err)
	}
	return tok, c, nil
}

// IssueToken issues an access token for the principal with clientID and
// the given resource, as the v2 token endpoint on host (host:port) would,
// without checking a secret. It is for in-process callers and tests.
func (s *Service) IssueToken(ctx context.Context, clientID, resource, host string) (string, error) {
	aud, ok := s.audienceFor(resource)
	if !ok {
		return "", fmt.Errorf("identity: unknown resource %q", resource)
	}
	rec, err := s.activePrincipal(ctx, clientID)
	if err != nil {
		return "", err
	}
	tok, _, err := s.issue(rec.Principal, aud, "https://"+strings.ToLower(host), flavourV2)
	return tok, err
}

// IssueFor issues an access token for the principal with clientID (a
// managed identity, typically) and resource, without a secret: for berth's
// own callers that have established the right to it (the instance metadata
// endpoint of the identity's group, pulls by identity). base is the issuer
// base the token is for, "https://HOST:PORT".
func (s *Service) IssueFor(ctx context.Context, clientID, resource, base string) (string, *Claims, error) {
	aud, ok := s.audienceFor(resource)
	if !ok {
		return "", nil, fmt.Errorf("identity: unknown resource %q", resource)
	}
	rec, err := s.activePrincipal(ctx, clientID)
	if err != nil {
		return "", nil, err
	}
	return s.issue(rec.Principal, aud, strings.TrimRight(strings.ToLower(base), "/"), flavourV1)
}

// Verify checks an access token: RS256 signature by a key of this service
// (by kid), issuer (one of berth's issuer shapes on a host in
// Config.IssuerHosts, for the token's tenant), tenant, not-before and expiry
// (with five minutes of clock skew, on the service's clock), and audience:
// the token's aud must equal one of audiences, compared case-insensitively
// and ignoring trailing slashes. At least one audience is required.
//
// Errors match ErrInvalidToken, and more precisely ErrTokenExpired,
// ErrBadSignature, ErrWrongAudience, ErrWrongTenant or ErrRevoked where
// that is the reason. Their text
// is safe to show to the client.
func (s *Service) Verify(token string, audiences ...string) (*Claims, error) {
	payload, err := verifyJWT([]*signingKey{s.key}, token)
	if err != nil {
		return nil, err
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, tokenErr(ErrInvalidToken, "claims are malformed")
	}
	if !s.knownTenant(c.TenantID) {
		return nil, tokenErr(ErrWrongTenant, "tenant %q is not served by berth", c.TenantID)
	}
	if !s.issuerValid(c.Issuer, c.TenantID) {
		return nil, tokenErr(ErrInvalidToken, "issuer %q is not a berth issuer", c.Issuer)
	}
	now := s.clk.Now()
	if c.NotBefore != 0 && now.Add(clockSkew).Before(time.Unix(c.NotBefore, 0)) {
		return nil, tokenErr(ErrInvalidToken, "token not valid before %s", time.Unix(c.NotBefore, 0).UTC().Format(time.RFC3339))
	}
	if c.Expiry == 0 {
		return nil, tokenErr(ErrInvalidToken, "token has no expiry")
	}
	if exp := time.Unix(c.Expiry, 0); !now.Add(-clockSkew).Before(exp) {
		return nil, tokenErr(ErrTokenExpired, "token expired at %s, current time is %s",
			exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !s.Live(c.ObjectID) {
		return nil, tokenErr(ErrRevoked, "the principal %q no longer exists", c.ObjectID)
	}
	want := normAudience(c.Audience)
	for _, a := range audiences {
		if want != "" && normAudience(a) == want {
			return &c, nil
		}
	}
	return nil, tokenErr(ErrWrongAudience, "audience %q is not accepted here", c.Audience)
}

// issuerValid reports whether iss is one of berth's issuers for tenant.
func (s *Service) issuerValid(iss, tenant string) bool {
	u, err := url.Parse(iss)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !s.hostAllowed(u.Host) ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return false
	}
	p := strings.ToLower(u.Path)
	t := strings.ToLower(tenant)
	return p == "/adfs" || p == "/"+t+"/" || p == "/"+t+"/v2.0"
}
