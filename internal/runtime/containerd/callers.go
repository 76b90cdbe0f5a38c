package containerd

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
)

// Caller is whom berth's own process acts for on a connection it opened
// to an address on the host: a client inside a group (relayed by the
// group's forward) or the pull of a group's images. Such connections come
// from a loopback address like any host process's; a listener on the host
// (a registry's login server) asks CallerOf with a request's remote
// address to tell them apart and to know which group, on which network,
// is asking.
type Caller struct {
	// Group is the group's runtime id; "" for connections shared by the
	// pulls of every group on Network.
	Group string
	// Network is the group's network (runtime.GroupSpec.Network; "" the
	// default network).
	Network string
	// Addr is the group's address, when known.
	Addr netip.Addr
}

// callers maps each open connection berth opened on a group's behalf, by
// its two ends (connKey), to its Caller. Both ends, not the local address
// alone: one ephemeral port may be in use at once by connections to
// different addresses (an idle pull connection to one registry, a relay to
// another), and only the pair tells them apart.
type callers struct {
	mu sync.RWMutex
	m  map[string]Caller
}

// CallerOf reports on whose behalf berth opened the connection a host
// listener sees from remoteAddr at its own address localAddr (an
// http.Request's RemoteAddr and the http.LocalAddrContextKey address). ok
// is false for connections berth did not open for a group. An entry exists
// from before the connection's first byte until it is closed.
func (r *Runtime) CallerOf(remoteAddr, localAddr string) (Caller, bool) {
	r.callers.mu.RLock()
	defer r.callers.mu.RUnlock()
	c, ok := r.callers.m[ConnKey(remoteAddr, localAddr)]
	return c, ok
}

// ConnKey names a TCP connection by its two ends as its dialer sees them
// (local, then remote address) — which is remote, then local, as its
// listener sees them.
func ConnKey(dialerLocal, dialerRemote string) string { return dialerLocal + ">" + dialerRemote }

// track records c as opened for who until it is closed; the returned
// connection must be used (and closed) in c's place.
func (cs *callers) track(c net.Conn, who Caller) net.Conn {
	k := ConnKey(c.LocalAddr().String(), c.RemoteAddr().String())
	cs.mu.Lock()
	if cs.m == nil {
		cs.m = map[string]Caller{}
	}
	cs.m[k] = who
	cs.mu.Unlock()
	return &trackedConn{Conn: c, done: func() {
		cs.mu.Lock()
		delete(cs.m, k)
		cs.mu.Unlock()
	}}
}

type trackedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (t *trackedConn) Close() error {
	err := t.Conn.Close()
	t.once.Do(t.done)
	return err
}

// CloseWrite half-closes TCP connections (the forward's relay uses it).
func (t *trackedConn) CloseWrite() error {
	if tc, ok := t.Conn.(*net.TCPConn); ok {
		return tc.CloseWrite()
	}
	return nil
}

// pullClient is the HTTP client for the pulls of groups on network: its
// connections are tracked as that network's.
func (r *Runtime) pullClient(network string) *http.Client {
	r.authMu.Lock()
	defer r.authMu.Unlock()
	if c, ok := r.pullClients[network]; ok {
		return c
	}
	who := Caller{Network: network}
	c := registryClient(r.cfg.RootCAs, func(ctx context.Context, d *net.Dialer, nw, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, nw, addr)
		if err != nil {
			return nil, err
		}
		return r.callers.track(conn, who), nil
	})
	r.pullClients[network] = c
	return c
}
