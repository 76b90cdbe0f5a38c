package server

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/registries"
	"github.com/berth-dev/berth/internal/runtime/containerd"
)

// Registry network rules are decided on the registry's listener, where
// every client arrives: a process on the host directly (its source
// address decides), a client inside a group through the group's forward,
// and the pulls of a group's images; the runtime says which group and
// network those last two are for (containerd.Runtime.CallerOf), and
// importImage's connections are marked here as a trusted service's (its
// source) or the registry's own (its target). A refused client gets ACR's
// 403 DENIED over the registry's own TLS, so the forward stays a plain
// relay.

// firewall wraps registry name's handler with its network decision (svc
// nil: no rules, berth's default registry).
func (h *registryHost) firewall(name string, svc *registries.Service, next http.Handler) http.Handler {
	if svc == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local := ""
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			local = a.String()
		}
		c := h.caller(r.RemoteAddr, local)
		if !svc.Allowed(name, c) {
			ip := ""
			if c.Addr.IsValid() {
				ip = c.Addr.String()
			} else if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
				ip = ap.Addr().Unmap().String()
			}
			denied(w, r, ip)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// caller says where a registry request whose connection comes from
// remoteAddr (to the listener's localAddr) comes from.
func (h *registryHost) caller(remoteAddr, localAddr string) registries.Caller {
	if c, ok := h.trusted.callerOf(remoteAddr, localAddr); ok {
		return c
	}
	if h.rt != nil {
		if c, ok := h.rt.CallerOf(remoteAddr, localAddr); ok {
			return registries.Caller{Kind: registries.FromGroup, Addr: c.Addr, Network: vnetOf(c.Network)}
		}
	}
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		addr = ap.Addr().Unmap()
	}
	return registries.Caller{Kind: registries.FromHost, Addr: addr}
}

// vnetOf is the virtual network of a runtime network (a subnet's ARM id,
// lower case); "" for the default network.
func vnetOf(runtimeNetwork string) string {
	if v, _, ok := strings.Cut(runtimeNetwork, "/subnets/"); ok {
		return v
	}
	return runtimeNetwork
}

// denied writes ACR's answer to a client its firewall refuses.
func denied(w http.ResponseWriter, r *http.Request, ip string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{
		{"code": "DENIED", "message": registries.DeniedMessage(ip)},
	}})
}

// trustedConns marks connections the server opens to registries with the
// caller they count as (importImage: a trusted service reading its source,
// the registry's own writes; a registry call made for a group, such as a
// credential exchange for its pull, would be marked FromGroup with the
// group's virtual network), by local address, while they are open.
type trustedConns struct {
	mu sync.RWMutex
	m  map[string]registries.Caller
}

func (t *trustedConns) callerOf(remoteAddr, localAddr string) (registries.Caller, bool) {
	if t == nil {
		return registries.Caller{}, false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	c, ok := t.m[containerd.ConnKey(remoteAddr, localAddr)]
	return c, ok
}

// transport returns a copy of base whose connections count as who.
func (t *trustedConns) transport(base *http.Transport, who registries.Caller) *http.Transport {
	tr := base.Clone()
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, nw, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, nw, addr)
		if err != nil {
			return nil, err
		}
		k := containerd.ConnKey(c.LocalAddr().String(), c.RemoteAddr().String())
		t.mu.Lock()
		if t.m == nil {
			t.m = map[string]registries.Caller{}
		}
		t.m[k] = who
		t.mu.Unlock()
		return &markedConn{Conn: c, done: func() {
			t.mu.Lock()
			delete(t.m, k)
			t.mu.Unlock()
		}}, nil
	}
	return tr
}

type markedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (m *markedConn) Close() error {
	err := m.Conn.Close()
	m.once.Do(m.done)
	return err
}

// linkTarget adapts the registries service to network.LinkTarget: private
// endpoints connect to registries.
type linkTarget struct{ regs *registries.Service }

var _ network.LinkTarget = linkTarget{}

func (l linkTarget) Connect(ctx context.Context, serviceID string, groupIDs []string, ep network.EndpointRef, approved bool, message string) (network.LinkState, error) {
	c, err := l.regs.Connect(ctx, serviceID, groupIDs, registries.Endpoint{ID: ep.ID, Name: ep.Name, Network: ep.Network}, approved, message)
	return linkState(c), err
}

func (l linkTarget) Disconnect(ctx context.Context, serviceID, endpointID string) error {
	return l.regs.Disconnect(ctx, serviceID, endpointID)
}

func (l linkTarget) State(ctx context.Context, serviceID, endpointID string) (network.LinkState, bool) {
	c, ok := l.regs.ConnectionOf(ctx, serviceID, endpointID)
	return linkState(c), ok
}

func linkState(c registries.Connection) network.LinkState {
	return network.LinkState{Status: c.Status, Description: c.Description, ActionsRequired: c.ActionsRequired}
}
