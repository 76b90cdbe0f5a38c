package containerd

import (
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRegistryClientTrust(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failing handshakes
	srv.StartTLS()
	defer srv.Close()
	ca := x509.NewCertPool()
	ca.AddCert(srv.Certificate())

	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) // not in the certificate
	for _, tc := range []struct {
		name  string
		extra *x509.CertPool
		url   string
		ok    bool
	}{
		{"system roots only", nil, srv.URL, false},
		{"extra CA", ca, srv.URL, true},
		{"extra CA, wrong name", ca, byName, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := registryClient(tc.extra, nil).Get(tc.url)
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != tc.ok {
				t.Errorf("GET %s: err = %v, want ok = %v", tc.url, err, tc.ok)
			}
		})
	}
}

func TestSameRegistry(t *testing.T) {
	for _, c := range []struct {
		server, host string
		want         bool
	}{
		{"127.0.0.1:7444", "127.0.0.1:7444", true},
		{"https://127.0.0.1:7444/", "127.0.0.1:7444", true},
		{"Example.azurecr.io", "example.azurecr.io", true},
		{"index.docker.io", "registry-1.docker.io", true},
		{"docker.io", "registry-1.docker.io", true},
		{"127.0.0.1:7444", "127.0.0.1:7445", false},
		{"docker.io", "ghcr.io", false},
	} {
		if got := sameRegistry(c.server, c.host); got != c.want {
			t.Errorf("sameRegistry(%q, %q) = %v", c.server, c.host, got)
		}
	}
}
