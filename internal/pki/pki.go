// Package pki is berth's own certificate authority. berth serves every
// endpoint (ARM, token service, registries) over TLS with a server
// certificate issued by a local development CA that the user trusts once.
//
// On-disk layout (dir is given by the caller, normally <data>/pki):
//
//	dir/
//	├── ca.pem           CA certificate ("berth development CA", 10 years)
//	├── ca-key.pem       CA private key, PKCS#8, mode 0600
//	├── server.pem       server certificate signed by the CA
//	└── server-key.pem   server private key, PKCS#8, mode 0600
//
// Every file is written atomically (temporary file, fsync, rename, fsync of
// the directory). ca.pem is written last when the CA is created, so a crash
// half-way leaves no ca.pem and the next start simply creates the CA again.
// Once ca.pem exists berth never replaces the CA by itself: a missing or
// mismatched ca-key.pem is an error (ErrInvalid), because users have trusted
// that certificate. The server certificate, by contrast, is derived state:
// it is re-issued whenever it is missing, unreadable, not signed by the CA,
// lacks a requested name or is close to expiry.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/fileutil"

	"github.com/berth-dev/berth/internal/clock"
)

// File names inside the PKI directory.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
)

// CACommonName is the subject common name of berth's CA.
const CACommonName = "berth development CA"

const (
	caLifetime     = 10 * 365 * 24 * time.Hour
	serverLifetime = 397 * 24 * time.Hour // the longest lifetime browsers accept
	renewBefore    = 30 * 24 * time.Hour  // re-issue the server certificate this long before expiry
	backdate       = time.Hour            // tolerate clocks slightly behind ours
)

// ErrInvalid is returned (wrapped) when the CA files on disk are unusable:
// unreadable PEM, a key that does not match the certificate, a certificate
// that is not a CA, or an expired CA. berth does not replace a CA that users
// may already trust; remove the directory to start over.
var ErrInvalid = errors.New("pki: invalid CA files")

// systemBundle is the system's root certificate bundle (Debian's path).
var systemBundle = "/etc/ssl/certs/ca-certificates.crt"

// PKI is berth's CA and current server certificate.
type PKI struct {
	dir    string
	caPEM  []byte
	ca     *x509.Certificate
	pool   *x509.CertPool
	server tls.Certificate
}

// defaultHosts are always in the server certificate.
var defaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// LoadOrCreate loads the CA and server certificate from dir, creating what
// is missing (see the package documentation). hosts are extra names or IP
// addresses (a ":port" suffix and IPv6 brackets are stripped) for the
// server certificate, on top of localhost, 127.0.0.1 and ::1. clk dates new
// certificates and judges expiry; nil means the wall clock.
func LoadOrCreate(dir string, hosts []string, clk clock.Clock) (*PKI, error) {
	if clk == nil {
		clk = clock.Real{}
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	names, ips, err := splitHosts(append(slices.Clone(defaultHosts), hosts...))
	if err != nil {
		return nil, err
	}
	now := clk.Now()

	caCert, caKey, caPEM, err := loadCA(dir, now)
	if errors.Is(err, fs.ErrNotExist) {
		caCert, caKey, caPEM, err = createCA(dir, now)
	}
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)

	server, ok := loadServer(dir, pool, names, ips, now)
	if !ok {
		server, err = issueServer(dir, caCert, caKey, names, ips, now)
		if err != nil {
			return nil, err
		}
	}
	return &PKI{dir: dir, caPEM: caPEM, ca: caCert, pool: pool, server: server}, nil
}

// CAPEM returns the CA certificate in PEM form.
func (p *PKI) CAPEM() []byte { return bytes.Clone(p.caPEM) }

// CAPath returns the path of the CA certificate file (for users to trust).
func (p *PKI) CAPath() string { return filepath.Join(p.dir, CAFile) }

// CertPool returns a new pool holding only berth's CA.
func (p *PKI) CertPool() *x509.CertPool { return p.pool.Clone() }

// TLSConfig returns a new server configuration presenting the server
// certificate, with TLS 1.2 as the minimum version.
func (p *PKI) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{p.server},
	}
}

// ClientTLSConfig returns a client configuration that trusts only berth's CA.
func (p *PKI) ClientTLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: p.CertPool()}
}

// WriteBundle atomically writes to path a PEM bundle of the system's root
// certificates (when the system has a bundle) followed by berth's CA, for
// SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS and the like.
func (p *PKI) WriteBundle(path string) error {
	sys, err := os.ReadFile(systemBundle)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pki: reading system roots: %w", err)
	}
	var b bytes.Buffer
	b.Write(sys)
	if b.Len() > 0 && !bytes.HasSuffix(sys, []byte("\n")) {
		b.WriteByte('\n')
	}
	b.Write(p.caPEM)
	if err := fileutil.WriteAtomic(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// splitHosts normalises hosts into DNS names and IP addresses, deduplicated.
func splitHosts(hosts []string) ([]string, []net.IP, error) {
	var names []string
	var ips []net.IP
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if hp, _, err := net.SplitHostPort(h); err == nil {
			h = hp
		}
		h = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		if strings.ContainsAny(h, " /:@") {
			return nil, nil, fmt.Errorf("pki: invalid host name %q", h)
		}
		if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	return names, ips, nil
}

// loadCA reads the CA. It returns an error wrapping fs.ErrNotExist only
// when ca.pem does not exist (the CA must be created).
func loadCA(dir string, now time.Time) (*x509.Certificate, crypto.Signer, []byte, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pki: %w", err)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %s: %v", ErrInvalid, CAFile, err)
	}
	if !cert.IsCA || cert.CheckSignatureFrom(cert) != nil {
		return nil, nil, nil, fmt.Errorf("%w: %s is not a self-signed CA certificate", ErrInvalid, CAFile)
	}
	if now.After(cert.NotAfter) {
		return nil, nil, nil, fmt.Errorf("%w: %s expired on %s", ErrInvalid, CAFile, cert.NotAfter.Format(time.DateOnly))
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		// Never let a missing key look like a missing CA.
		return nil, nil, nil, fmt.Errorf("%w: %s: %v", ErrInvalid, CAKeyFile, errors.Unwrap(err))
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %s: %v", ErrInvalid, CAKeyFile, err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, nil, nil, fmt.Errorf("%w: %s does not match %s", ErrInvalid, CAKeyFile, CAFile)
	}
	return cert, key, certPEM, nil
}

func createCA(dir string, now time.Time) (*x509.Certificate, crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pki: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: CACommonName, Organization: []string{"berth"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pki: creating CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pki: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// Key first, certificate last: ca.pem is the commit point.
	if err := fileutil.WriteAtomic(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return nil, nil, nil, fmt.Errorf("pki: %w", err)
	}
	if err := fileutil.WriteAtomic(filepath.Join(dir, CAFile), certPEM, 0o644); err != nil {
		return nil, nil, nil, fmt.Errorf("pki: %w", err)
	}
	return cert, key, certPEM, nil
}

// loadServer returns the server certificate on disk if it is usable for
// names and ips at now; ok is false if it must be (re-)issued.
func loadServer(dir string, roots *x509.CertPool, names []string, ips []net.IP, now time.Time) (tls.Certificate, bool) {
	certPEM, err := os.ReadFile(filepath.Join(dir, ServerFile))
	if err != nil {
		return tls.Certificate{}, false
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, ServerKeyFile))
	if err != nil {
		return tls.Certificate{}, false
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, false
	}
	leaf := pair.Leaf
	if leaf == nil || now.Before(leaf.NotBefore) || leaf.NotAfter.Sub(now) < renewBefore {
		return tls.Certificate{}, false
	}
	opts := x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		return tls.Certificate{}, false
	}
	for _, n := range names {
		if !slices.Contains(leaf.DNSNames, n) {
			return tls.Certificate{}, false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return tls.Certificate{}, false
		}
	}
	return pair, true
}

func issueServer(dir string, ca *x509.Certificate, caKey crypto.Signer, names []string, ips []net.IP, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: %w", err)
	}
	notAfter := now.Add(serverLifetime)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "berth", Organization: []string{"berth"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: issuing server certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := fileutil.WriteAtomic(filepath.Join(dir, ServerKeyFile), keyPEM, 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: %w", err)
	}
	if err := fileutil.WriteAtomic(filepath.Join(dir, ServerFile), certPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: %w", err)
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

func parseCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PRIVATE KEY PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return s, nil
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}
