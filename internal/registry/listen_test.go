package registry

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// ctrAccept is the Accept header containerd 1.6's resolver (Debian's
// `ctr image pull`) sends on a manifest request.
const ctrAccept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, " +
	"application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*"

// plainRequest writes raw on a plain TCP connection to the registry's TLS
// port and reads one response.
func (e *env) plainRequest(t *testing.T, raw string) *http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", e.host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(time.Minute)) // a hang guard, not a timing check
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to a plain-HTTP request: %v", err)
	}
	return resp
}

// TestPlainHTTPManifestRequest replays the request containerd 1.6 sends for
// `ctr image pull --user ID:SECRET --tlscacert ca.pem 127.0.0.1:PORT/repo:tag`:
// a plain-HTTP HEAD of the manifest on the login server's (TLS) port. It used
// to get Go's bare 400 Bad Request; it gets a redirect to the same URL over
// https, where the registry answers as usual.
func TestPlainHTTPManifestRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := e.pushImage("app", "v1", "1")

	resp := e.plainRequest(t, "HEAD /v2/app/manifests/v1 HTTP/1.1\r\nHost: "+e.host+"\r\nUser-Agent: containerd/1.6.20~ds1\r\n"+
		"Accept: "+ctrAccept+"\r\nAccept-Encoding: gzip\r\n\r\n")
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("plain HEAD: status %d, want 307", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if loc != e.base+"/v2/app/manifests/v1" {
		t.Fatalf("Location %q, want %q", loc, e.base+"/v2/app/manifests/v1")
	}

	// Following it as containerd's client does: the challenge, then the
	// manifest with a token.
	head := func(auth string) *http.Response {
		req, _ := http.NewRequest("HEAD", "http://"+e.host+"/v2/app/manifests/v1", nil)
		req.Header.Set("Accept", ctrAccept)
		req.Header.Set("User-Agent", "containerd/1.6.20~ds1")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		r, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r
	}
	r := head("")
	if r.StatusCode != http.StatusUnauthorized || r.Request.URL.Scheme != "https" {
		t.Fatalf("after the redirect: %d from %s, want 401 from https", r.StatusCode, r.Request.URL)
	}
	if ch := r.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `realm="https://`+e.host+`/oauth2/token"`) {
		t.Fatalf("challenge %q", ch)
	}
	r = head(bearer(e.token("repository:app:pull")))
	if r.StatusCode != http.StatusOK || r.Header.Get("Docker-Content-Digest") != img.digest.String() {
		t.Fatalf("HEAD with a token after the redirect: %d, digest %q, want 200 %s", r.StatusCode, r.Header.Get("Docker-Content-Digest"), img.digest)
	}
}

// TestPlainHTTPRedirectStaysOnLoginServer: the redirect names the login
// server, whatever Host the request claims, and keeps the method, path and
// query.
func TestPlainHTTPRedirectStaysOnLoginServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp := e.plainRequest(t, "POST /v2/app/blobs/uploads/?mount=sha256:abc&from=other HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 0\r\n\r\n")
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("status %d, want 307", resp.StatusCode)
	}
	if loc, want := resp.Header.Get("Location"), e.base+"/v2/app/blobs/uploads/?mount=sha256:abc&from=other"; loc != want {
		t.Fatalf("Location %q, want %q", loc, want)
	}
}

// TestListenServesTLSAndSilentClients: a connection that never sends a byte
// does not hold up others, and TLS clients are served beside plain ones.
func TestListenServesTLSAndSilentClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	silent, err := net.Dial("tcp", e.host)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	e.do(request{method: "GET", path: "/v2/", auth: "basic"}).want(t, 200, "")
	c, err := tls.Dial("tcp", e.host, e.client.Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatalf("TLS handshake beside a silent connection: %v", err)
	}
	c.Close()
}
