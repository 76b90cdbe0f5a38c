package registry

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// A login server speaks HTTPS only, as ACR does. Some clients nevertheless
// speak plain HTTP to a registry on a loopback address: containerd 1.6's
// resolver (Debian's `ctr image pull 127.0.0.1:PORT/...`, with or without
// --tlscacert) picks http for localhost hosts unless told --plain-http=false
// through a hosts.toml, and never retries with https. A TLS-only listener
// answers such a request with Go's bare "400 Bad Request: Client sent an HTTP
// request to an HTTPS server", which the client reports as the registry
// refusing the manifest request.
//
// Listen and HTTPSOnly make the port answer both: a connection that opens
// with a TLS handshake is served over TLS; one that opens with anything else
// is served as plain HTTP, where HTTPSOnly redirects every request to the
// same URL over https (307, so the method and body are kept). Clients follow
// the redirect, carry their credentials to the same host and port, and the
// registry itself is still only ever served over TLS.

// sniffTimeout bounds how long a new connection may stay silent before its
// first byte decides between TLS and plain HTTP.
const sniffTimeout = 30 * time.Second

// tlsHandshake is the content type of a TLS handshake record, the first byte
// a TLS client sends.
const tlsHandshake = 0x16

// Listen wraps ln so that connections opening with a TLS handshake are
// served with TLS under cfg and every other connection is handed over as
// plain TCP (which HTTPSOnly redirects). Accept does not wait for a slow
// client's first byte: each new connection is sniffed on its own goroutine.
func Listen(ln net.Listener, cfg *tls.Config) net.Listener {
	return &sniffListener{Listener: ln, cfg: cfg, conns: make(chan net.Conn), errs: make(chan error, 1), done: make(chan struct{})}
}

type sniffListener struct {
	net.Listener
	cfg   *tls.Config
	conns chan net.Conn
	errs  chan error
	done  chan struct{}

	start, stop sync.Once
}

// Accept implements net.Listener.
func (l *sniffListener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *sniffListener) Close() error {
	err := net.ErrClosed
	l.stop.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}

func (l *sniffListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errs <- err:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return // http.Server stops serving on a permanent error
			}
			continue
		}
		go l.sniff(c)
	}
}

// sniff reads c's first byte and hands c to Accept as a TLS or a plain
// connection.
func (l *sniffListener) sniff(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReaderSize(c, 1)
	first, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	var out net.Conn = &peekedConn{Conn: c, r: br}
	if first[0] == tlsHandshake {
		out = tls.Server(out, l.cfg)
	}
	select {
	case l.conns <- out:
	case <-l.done:
		c.Close()
	}
}

// peekedConn is a connection whose first bytes were read into r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// HTTPSOnly serves requests that came over TLS with h and redirects the
// others to the same path and query at https://login (the login server, not
// the request's Host, so the redirect never leads elsewhere).
func HTTPSOnly(login string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			h.ServeHTTP(w, r)
			return
		}
		u := *r.URL
		u.Scheme, u.Host = "https", login
		w.Header().Set("Location", u.String())
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
}
