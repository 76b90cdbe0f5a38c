package registry

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Token issuer and grant types, as ACR writes them (acr.md §2.6).
const (
	tokenIssuer       = "Azure Container Registry"
	grantRefreshToken = "refresh_token"
	grantAccessToken  = "access_token"
)

// Default token lifetimes, close to what ACR issues.
const (
	DefaultRefreshTokenTTL = 3 * time.Hour
	DefaultAccessTokenTTL  = 75 * time.Minute
)

// tokenClaims is the payload of the registry's refresh and access tokens.
type tokenClaims struct {
	JTI         string            `json:"jti"`
	Subject     string            `json:"sub"`
	NotBefore   int64             `json:"nbf"`
	Expires     int64             `json:"exp"`
	IssuedAt    int64             `json:"iat"`
	Issuer      string            `json:"iss"`
	Audience    string            `json:"aud"`
	Version     string            `json:"version"`
	GrantType   string            `json:"grant_type"`
	AppID       string            `json:"appid,omitempty"`
	Tenant      string            `json:"tenant"`
	RegistryID  string            `json:"rid,omitempty"` // the issuer's Config.ID (ACR's rid claim)
	Revision    string            `json:"rev,omitempty"` // Principal.Revision
	Permissions *tokenPermissions `json:"permissions,omitempty"`
	// Scoped and Repositories carry a scoped principal's rules (an ACR
	// token's scope map, as it was when the token was issued).
	Scoped       bool                `json:"scoped,omitempty"`
	Repositories []RepositoryActions `json:"repositories,omitempty"`
	Roles        []string            `json:"roles"`
	Access       []Access            `json:"access,omitempty"`
	// Pad is filler that makes the encoded payload decodable with standard
	// base64 (see encodePayload).
	Pad string `json:"pad,omitempty"`
}

type tokenPermissions struct {
	Actions    []string `json:"actions"`
	NotActions []string `json:"notActions"`
}

// grant returns what the token allows: an access token its access list, a
// refresh token its principal's permissions.
func (c *tokenClaims) grant() grant {
	p := Principal{ObjectID: c.Subject, ClientID: c.AppID, TenantID: c.Tenant, Revision: c.Revision,
		Scoped: c.Scoped, Repositories: c.Repositories}
	if c.Permissions != nil {
		p.Actions = c.Permissions.Actions
	}
	if c.GrantType == grantAccessToken {
		return grant{principal: p, access: c.Access, limited: true, token: c}
	}
	return grant{principal: p, token: c}
}

// expires returns when the token expires.
func (c *tokenClaims) expires() time.Time { return time.Unix(c.Expires, 0) }

// issueToken signs a token of grantType for principal p, valid from now
// until expires. access is set only on access tokens.
func (r *Registry) issueToken(grantType string, p Principal, access []Access, expires time.Time) (string, error) {
	now := r.clock.Now()
	c := tokenClaims{
		JTI:         uuid.NewString(),
		Subject:     p.ObjectID,
		NotBefore:   now.Add(-time.Minute).Unix(), // tolerate clock skew between processes
		Expires:     expires.Unix(),
		IssuedAt:    now.Unix(),
		Issuer:      tokenIssuer,
		Audience:    r.loginServer,
		Version:     "1.0",
		GrantType:   grantType,
		AppID:       p.ClientID,
		Tenant:      p.TenantID,
		RegistryID:  r.id,
		Revision:    p.Revision,
		Permissions: &tokenPermissions{Actions: nonNil(p.Actions), NotActions: []string{}},
		Roles:       []string{},
	}
	if p.Scoped {
		c.Permissions.Actions = []string{}
		c.Scoped, c.Repositories = true, p.Repositories
	}
	if grantType == grantAccessToken {
		c.Access = access
	}
	payload, err := encodePayload(&c)
	if err != nil {
		return "", err
	}
	signed := r.tokenHeader + "." + payload
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(nil, r.signingKey, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// encodePayload returns the JWT payload segment of c. The Azure SDKs decode
// payloads with the standard base64 alphabet, so the segment must contain no
// '-' or '_' and need no '=' padding (length divisible by 4).
//
// In base64 a '-' or '_' (values 62, 63) comes only from a third byte of a
// 3-byte group whose low six bits are all but zero: '>', '?', '~', DEL, or a
// byte >= 0x80. asciiJSON escapes all of those as \uXXXX, which leaves only the
// length to fix, by growing the Pad claim one byte at a time.
func encodePayload(c *tokenClaims) (string, error) {
	c.Pad = ""
	for range 8 {
		b, err := json.Marshal(c)
		if err != nil {
			return "", fmt.Errorf("encode token: %w", err)
		}
		s := base64.RawURLEncoding.EncodeToString(asciiJSON(b))
		if len(s)%4 == 0 && !strings.ContainsAny(s, "-_") {
			return s, nil
		}
		c.Pad += "0"
	}
	return "", errors.New("encode token: cannot pad payload") // unreachable: see above
}

// asciiJSON rewrites JSON so that it holds only ASCII other than '>', '?', '~'
// and DEL, escaping them as \uXXXX. Such characters occur only inside string
// literals, where the escape means the same.
func asciiJSON(b []byte) []byte {
	var out bytes.Buffer
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r < utf8.RuneSelf && r != '>' && r != '?' && r != '~' && r != 0x7f:
			out.WriteByte(b[0])
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&out, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
		b = b[n:]
	}
	return out.Bytes()
}

// verifyToken checks a token's signature, issuer, audience, registry and
// lifetime and returns its claims. Verified tokens are cached; their
// lifetime is checked on every call.
func (r *Registry) verifyToken(tok string) (*tokenClaims, error) {
	c := r.tokens.get(tok)
	if c == nil {
		var err error
		if c, err = r.verifySignedToken(tok); err != nil {
			return nil, err
		}
		r.tokens.put(tok, c)
	}
	now := r.clock.Now().Unix()
	switch {
	case now >= c.Expires:
		return nil, errors.New("token: expired")
	case now < c.NotBefore:
		return nil, errors.New("token: not yet valid")
	}
	return c, nil
}

// verifySignedToken checks everything about a token but its lifetime.
func (r *Registry) verifySignedToken(tok string) (*tokenClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("token: not a JWT")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("token header: %w", err)
	}
	var h jwtHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, fmt.Errorf("token header: %w", err)
	}
	if h.Alg != "RS256" || (r.keyID != "" && h.Kid != r.keyID) {
		return nil, fmt.Errorf("token: unexpected alg %q or key %q", h.Alg, h.Kid)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("token signature: %w", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&r.signingKey.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return nil, errors.New("token: bad signature")
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("token payload: %w", err)
	}
	var c tokenClaims
	if err := json.Unmarshal(pb, &c); err != nil {
		return nil, fmt.Errorf("token payload: %w", err)
	}
	switch {
	case c.Issuer != tokenIssuer:
		return nil, fmt.Errorf("token: issuer %q", c.Issuer)
	case c.Audience != r.loginServer:
		return nil, fmt.Errorf("token: audience %q", c.Audience)
	case c.RegistryID != r.id: // the login server may have served another registry before
		return nil, fmt.Errorf("token: registry id %q", c.RegistryID)
	case c.GrantType != grantAccessToken && c.GrantType != grantRefreshToken:
		return nil, fmt.Errorf("token: grant_type %q", c.GrantType)
	}
	return &c, nil
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid,omitempty"`
}

func encodeHeader(keyID string) string {
	b, _ := json.Marshal(jwtHeader{Alg: "RS256", Typ: "JWT", Kid: keyID})
	return base64.RawURLEncoding.EncodeToString(b)
}
