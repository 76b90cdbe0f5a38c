package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/clock"
)

func leaf(t *testing.T, p *PKI) *x509.Certificate {
	t.Helper()
	l := p.TLSConfig().Certificates[0].Leaf
	if l == nil {
		t.Fatal("server certificate has no parsed leaf")
	}
	return l
}

func TestCertificateVerifiesForEverySAN(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	p, err := LoadOrCreate(t.TempDir(), []string{"berth.test", "10.1.2.3", "[fd00::7]:7443", "Other.Example:443"}, clk)
	if err != nil {
		t.Fatal(err)
	}
	l := leaf(t, p)
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "berth.test", "10.1.2.3", "fd00::7", "other.example"} {
		opts := x509.VerifyOptions{DNSName: host, Roots: p.CertPool(), CurrentTime: clk.Now()}
		if _, err := l.Verify(opts); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	opts := x509.VerifyOptions{DNSName: "not-in-cert.test", Roots: p.CertPool(), CurrentTime: clk.Now()}
	if _, err := l.Verify(opts); err == nil {
		t.Error("certificate verified for a name it does not carry")
	}
	// The system roots alone must not trust it.
	if _, err := l.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: x509.NewCertPool(), CurrentTime: clk.Now()}); err == nil {
		t.Error("certificate verified without berth's CA")
	}
}

func TestFilesAndModes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, err := LoadOrCreate(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{CAFile: 0o644, CAKeyFile: 0o600, ServerFile: 0o644, ServerKeyFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("directory holds %d entries, want 4 (temporary files left behind?)", len(entries))
	}
	onDisk, _ := os.ReadFile(p.CAPath())
	if !bytes.Equal(onDisk, p.CAPEM()) {
		t.Error("CAPEM differs from ca.pem")
	}
	ca, err := parseCert(p.CAPEM())
	if err != nil {
		t.Fatal(err)
	}
	if ca.Subject.CommonName != CACommonName || !ca.IsCA {
		t.Errorf("CA subject %q, IsCA %v", ca.Subject.CommonName, ca.IsCA)
	}
	if life := ca.NotAfter.Sub(ca.NotBefore); life < 9*365*24*time.Hour {
		t.Errorf("CA lifetime %v", life)
	}
}

func TestReloadIsStable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := clock.NewFake(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	p1, err := LoadOrCreate(dir, []string{"berth.test"}, clk)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(24 * time.Hour)
	// Same hosts, in another spelling: nothing is re-issued.
	p2, err := LoadOrCreate(dir, []string{"BERTH.test"}, clk)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p1.CAPEM(), p2.CAPEM()) {
		t.Error("CA changed on reload")
	}
	if !leaf(t, p1).Equal(leaf(t, p2)) {
		t.Error("server certificate re-issued although nothing changed")
	}
	// A subset of the hosts is served by the same certificate.
	p3, err := LoadOrCreate(dir, nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	if !leaf(t, p1).Equal(leaf(t, p3)) {
		t.Error("server certificate re-issued for a subset of its names")
	}
}

func TestReissueForNewHostAndNearExpiry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := clock.NewFake(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	p1, err := LoadOrCreate(dir, nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := LoadOrCreate(dir, []string{"192.168.7.7"}, clk)
	if err != nil {
		t.Fatal(err)
	}
	if leaf(t, p1).Equal(leaf(t, p2)) {
		t.Fatal("server certificate not re-issued for a new host")
	}
	if !bytes.Equal(p1.CAPEM(), p2.CAPEM()) {
		t.Fatal("CA changed when only the server certificate should")
	}
	if _, err := leaf(t, p2).Verify(x509.VerifyOptions{DNSName: "192.168.7.7", Roots: p1.CertPool(), CurrentTime: clk.Now()}); err != nil {
		t.Fatal(err)
	}

	clk.Advance(serverLifetime - renewBefore + time.Hour)
	p3, err := LoadOrCreate(dir, []string{"192.168.7.7"}, clk)
	if err != nil {
		t.Fatal(err)
	}
	if leaf(t, p2).Equal(leaf(t, p3)) {
		t.Fatal("server certificate not re-issued near expiry")
	}
	if !leaf(t, p3).NotAfter.After(clk.Now().Add(renewBefore)) {
		t.Fatal("re-issued certificate expires too soon")
	}
}

func TestTamperedAndMissingFiles(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (string, *PKI) {
		dir := t.TempDir()
		p, err := LoadOrCreate(dir, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return dir, p
	}
	write := func(t *testing.T, path string, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("server files are re-issued", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			mutate func(t *testing.T, dir string)
		}{
			{"missing cert", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, ServerFile)) }},
			{"missing key", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, ServerKeyFile)) }},
			{"garbage cert", func(t *testing.T, dir string) { write(t, filepath.Join(dir, ServerFile), []byte("garbage")) }},
			{"other key", func(t *testing.T, dir string) {
				other := t.TempDir()
				if _, err := LoadOrCreate(other, nil, nil); err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(filepath.Join(other, ServerKeyFile))
				write(t, filepath.Join(dir, ServerKeyFile), b)
			}},
			{"signed by another CA", func(t *testing.T, dir string) {
				other := t.TempDir()
				if _, err := LoadOrCreate(other, nil, nil); err != nil {
					t.Fatal(err)
				}
				for _, f := range []string{ServerFile, ServerKeyFile} {
					b, _ := os.ReadFile(filepath.Join(other, f))
					write(t, filepath.Join(dir, f), b)
				}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				dir, p1 := setup(t)
				tc.mutate(t, dir)
				p2, err := LoadOrCreate(dir, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(p1.CAPEM(), p2.CAPEM()) {
					t.Error("CA replaced")
				}
				if _, err := leaf(t, p2).Verify(x509.VerifyOptions{DNSName: "localhost", Roots: p1.CertPool()}); err != nil {
					t.Errorf("re-issued certificate does not verify: %v", err)
				}
				if _, err := tls.LoadX509KeyPair(filepath.Join(dir, ServerFile), filepath.Join(dir, ServerKeyFile)); err != nil {
					t.Errorf("files on disk are not a valid pair: %v", err)
				}
			})
		}
	})

	t.Run("CA problems are errors", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			mutate func(t *testing.T, dir string)
		}{
			{"missing key", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, CAKeyFile)) }},
			{"garbage key", func(t *testing.T, dir string) { write(t, filepath.Join(dir, CAKeyFile), []byte("garbage")) }},
			{"garbage cert", func(t *testing.T, dir string) { write(t, filepath.Join(dir, CAFile), []byte("garbage")) }},
			{"key of another CA", func(t *testing.T, dir string) {
				other := t.TempDir()
				if _, err := LoadOrCreate(other, nil, nil); err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(filepath.Join(other, CAKeyFile))
				write(t, filepath.Join(dir, CAKeyFile), b)
			}},
			{"server cert as CA", func(t *testing.T, dir string) {
				b, _ := os.ReadFile(filepath.Join(dir, ServerFile))
				write(t, filepath.Join(dir, CAFile), b)
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				dir, _ := setup(t)
				tc.mutate(t, dir)
				_, err := LoadOrCreate(dir, nil, nil)
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("got %v, want ErrInvalid", err)
				}
			})
		}
	})

	t.Run("half-created CA is created again", func(t *testing.T) {
		dir, p1 := setup(t)
		os.Remove(filepath.Join(dir, CAFile)) // crash before the commit point
		p2, err := LoadOrCreate(dir, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(p1.CAPEM(), p2.CAPEM()) {
			t.Error("CA not re-created")
		}
		if _, err := leaf(t, p2).Verify(x509.VerifyOptions{DNSName: "localhost", Roots: p2.CertPool()}); err != nil {
			t.Errorf("server certificate not re-issued for the new CA: %v", err)
		}
	})

	t.Run("expired CA is an error", func(t *testing.T) {
		dir := t.TempDir()
		clk := clock.NewFake(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
		if _, err := LoadOrCreate(dir, nil, clk); err != nil {
			t.Fatal(err)
		}
		clk.Advance(caLifetime + time.Hour)
		if _, err := LoadOrCreate(dir, nil, clk); !errors.Is(err, ErrInvalid) {
			t.Fatalf("got %v, want ErrInvalid", err)
		}
	})

	t.Run("invalid host", func(t *testing.T) {
		if _, err := LoadOrCreate(t.TempDir(), []string{"a b"}, nil); err == nil {
			t.Fatal("accepted a host name with a space")
		}
	})
}

func TestTLSHandshake(t *testing.T) {
	t.Parallel()
	p, err := LoadOrCreate(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = p.TLSConfig()
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "https://"), ":")

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: p.ClientTLSConfig()}}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		resp, err := client.Get("https://" + host + ":" + port + "/")
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "ok" {
			t.Fatalf("%s: body %q", host, body)
		}
	}
	// TLS 1.1 is refused.
	old := &tls.Config{RootCAs: p.CertPool(), MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}
	if conn, err := tls.Dial("tcp", "127.0.0.1:"+port, old); err == nil {
		conn.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

func TestWriteBundle(t *testing.T) {
	dir := t.TempDir()
	p, err := LoadOrCreate(filepath.Join(dir, "pki"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Reuse another CA as a stand-in for the system roots (no trailing newline).
	other, err := LoadOrCreate(filepath.Join(dir, "other"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sys := filepath.Join(dir, "system.crt")
	if err := os.WriteFile(sys, bytes.TrimSpace(other.CAPEM()), 0o644); err != nil {
		t.Fatal(err)
	}
	saved := systemBundle
	systemBundle = sys
	defer func() { systemBundle = saved }()

	out := filepath.Join(dir, "bundle.pem")
	if err := p.WriteBundle(out); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("bundle does not parse")
	}
	for _, want := range [][]byte{other.CAPEM(), p.CAPEM()} {
		if !bytes.Contains(b, bytes.TrimSpace(want)) {
			t.Error("bundle lacks a certificate")
		}
	}
	if _, err := leaf(t, p).Verify(x509.VerifyOptions{DNSName: "localhost", Roots: pool}); err != nil {
		t.Errorf("bundle does not trust berth's server certificate: %v", err)
	}
	if n := bytes.Count(b, []byte("-----BEGIN CERTIFICATE-----")); n != 2 {
		t.Errorf("bundle holds %d certificates, want 2", n)
	}

	// Without system roots the bundle is berth's CA alone.
	systemBundle = filepath.Join(dir, "absent.crt")
	if err := p.WriteBundle(out); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(out)
	if !bytes.Equal(b, p.CAPEM()) {
		t.Error("bundle without system roots is not just berth's CA")
	}
}
