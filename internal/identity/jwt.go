package identity

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
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
	path := filepath.Join(dir, keyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(dir, path)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("identity: %s: no PRIVATE KEY PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", path, err)
	}
	priv, ok := k.(*rsa.PrivateKey)
	if !ok || priv.N.BitLen() < 2048 {
		return nil, fmt.Errorf("identity: %s: not an RSA key of at least 2048 bits", path)
	}
	return &signingKey{priv: priv, kid: thumbprint(&priv.PublicKey)}, nil
}

func createKey(dir, path string) (*signingKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("identity: writing signing key: %w", err)
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

// writeFileAtomic writes data to path through a synced temporary file in the
// same directory renamed over path, then syncs the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
