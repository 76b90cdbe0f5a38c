package identity

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/internal/fileutil"
)

const keyFile = "token-signing-key.pem"

// maxTokenLen bounds what Verify will parse.
const maxTokenLen = 16 << 10

var b64 = base64.RawURLEncoding.Strict()

// signingKey is an RSA key with its key ID.
type signingKey struct {
	priv *rsa.PrivateKey
	kid  string
}

// loadOrCreateKey reads the signing key from dir, creating it if the file
// does not exist. An unreadable key is an error rather than replaced:
// tokens signed by it may still be in use.
func loadOrCreateKey(dir string) (*signingKey, error) {
	priv, err := fileutil.LoadOrCreateRSAKey(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("identity: signing key: %w", err)
	}
	return &signingKey{priv: priv, kid: thumbprint(&priv.PublicKey)}, nil
}

// jwk is an RSA public key in JWK form (RFC 7517), as Entra publishes them.
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func publicJWK(k *signingKey) jwk {
	return jwk{Kty: "RSA", Use: "sig", Alg: "RS256", Kid: k.kid,
		N: b64.EncodeToString(k.priv.N.Bytes()), E: b64.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes())}
}

// thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url): stable for
// a key, whatever file it is stored in.
func thumbprint(pub *rsa.PublicKey) string {
	canon := fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`,
		b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes()), b64.EncodeToString(pub.N.Bytes()))
	sum := sha256.Sum256([]byte(canon))
	return b64.EncodeToString(sum[:])
}

// jwtHeader is a JOSE header.
type jwtHeader struct {
	Typ  string   `json:"typ,omitempty"`
	Alg  string   `json:"alg"`
	Kid  string   `json:"kid,omitempty"`
	Crit []string `json:"crit,omitempty"`
}

// signJWT returns the compact RS256 serialisation of claims.
func signJWT(k *signingKey, claims any) (string, error) {
	h, err := json.Marshal(jwtHeader{Typ: "JWT", Alg: "RS256", Kid: k.kid})
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(nil, k.priv, crypto.SHA256, digest[:])
	if err != nil {
		return "", err
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// verifyJWT checks the structure, algorithm, key ID and signature of a
// compact JWT and returns its payload. Errors are tokenErrors.
func verifyJWT(keys []*signingKey, token string) ([]byte, error) {
	if len(token) > maxTokenLen {
		return nil, tokenErr(ErrInvalidToken, "token too long")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, tokenErr(ErrInvalidToken, "not a JWS compact serialisation")
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, tokenErr(ErrInvalidToken, "header is not base64url")
	}
	var h jwtHeader
	dec := json.NewDecoder(bytes.NewReader(hb))
	if err := dec.Decode(&h); err != nil {
		return nil, tokenErr(ErrInvalidToken, "header is not JSON")
	}
	if h.Alg != "RS256" {
		return nil, tokenErr(ErrInvalidToken, "algorithm %q not accepted", h.Alg)
	}
	if len(h.Crit) > 0 {
		return nil, tokenErr(ErrInvalidToken, "critical header parameters not supported")
	}
	var key *signingKey
	for _, k := range keys {
		if k.kid == h.Kid {
			key = k
		}
	}
	if key == nil {
		return nil, tokenErr(ErrBadSignature, "unknown signing key %q", h.Kid)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, tokenErr(ErrBadSignature, "signature is not base64url")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&key.priv.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		return nil, tokenErr(ErrBadSignature, "signature does not verify")
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, tokenErr(ErrInvalidToken, "payload is not base64url")
	}
	return payload, nil
}
