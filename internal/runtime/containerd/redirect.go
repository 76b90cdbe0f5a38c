package containerd

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// A Redirect makes an address outside the groups (a link-local service
// address such as 169.254.169.254:80) answer in every group, the way a cloud
// provider serves its metadata endpoint off the machine: nothing listens
// inside the group, so the group's own containers keep every port. Each
// group has a route to the address through its bridge's gateway (the
// virtual networks' groups have it by their default route anyway); on the
// host, a DNAT rule per bridge in the runtime's own chain of the nat table
// (jumped to from PREROUTING, matching only traffic arriving on that bridge:
// the host's own traffic to the address is never touched) sends the
// connection to a listener the runtime holds on that bridge's gateway, on a
// port the kernel picked for it. The listener tells the group by the
// connection's source address among the groups of its own bridge
// (GroupByAddr) and hands the connection to Serve; a connection from no
// group of that bridge (another bridge's group dialling the gateway
// directly, the host itself) is closed. Forwarding group traffic to the
// address any other way (another port, UDP) is dropped by the runtime's
// FORWARD chain, so groups never reach the host's own service at that
// address (a cloud VM's metadata endpoint).
//
// Listeners and rules follow the bridges: one per bridge of the default
// network and per virtual-network subnet, opened when a bridge is created
// and closed when it is removed; New re-creates the bridges, and the
// caller's AddRedirect after a restart opens fresh listeners and rewrites
// the rules (the chain is rebuilt in one iptables-restore transaction).
// Close closes the listeners but leaves the rules, as it leaves the groups
// running: until the next runtime rewrites them, a group's connection to the
// address is refused and nothing of it is forwarded off the host.
type Redirect struct {
	// Addr is the IPv4 address and TCP port groups connect to.
	Addr netip.AddrPort
	// Serve handles each connection on its own goroutine, with the id of
	// the group it came from. It owns c.
	Serve func(groupID string, c net.Conn)
}

// gwKey names one redirect listener: a bridge and the redirect's address.
type gwKey struct {
	bridge string
	addr   netip.AddrPort
}

// gwListener is a redirect's listener on one bridge's gateway.
type gwListener struct {
	at netip.AddrPort // gateway and the port the kernel chose
	ln net.Listener
}

// AddRedirect starts rd on every bridge, current and future, and routes
// every group (running and future) to it. A second redirect with the same
// address is ignored.
func (r *Runtime) AddRedirect(ctx context.Context, rd Redirect) error {
	if !rd.Addr.Addr().Is4() || rd.Addr.Port() == 0 || rd.Serve == nil {
		return fmt.Errorf("redirect %s: want an IPv4 address, a port and Serve", rd.Addr)
	}
	r.netMu.Lock()
	for _, have := range r.redirects {
		if have.Addr == rd.Addr {
			r.netMu.Unlock()
			return nil
		}
	}
	r.redirects = append(r.redirects, rd)
	err := r.openRedirects()
	if err == nil {
		err = r.syncFirewall(ctx)
	}
	if err != nil {
		r.redirects = r.redirects[:len(r.redirects)-1]
		r.closeRedirects(func(k gwKey) bool { return k.addr == rd.Addr })
		if ferr := r.syncFirewall(ctx); ferr != nil {
			r.log.Warn("firewall after a failed redirect", "err", ferr)
		}
		r.netMu.Unlock()
		return fmt.Errorf("redirect %s: %w", rd.Addr, err)
	}
	r.netMu.Unlock()
	for id, g := range r.liveGroups() {
		g.mu.Lock()
		gw := g.gateway
		g.mu.Unlock()
		if gw.IsValid() {
			r.routeRedirects(id, gw, []Redirect{rd})
		}
	}
	return nil
}

// bridgeGateways lists every bridge of the runtime with its gateway (netMu
// held).
func (r *Runtime) bridgeGateways() map[string]netip.Addr {
	out := make(map[string]netip.Addr, len(r.shards)+len(r.nets))
	for _, s := range r.shards {
		out[s.Bridge] = gatewayOf(s.Prefix)
	}
	for _, v := range r.nets {
		out[v.net.bridge] = gatewayOf(v.Prefix)
	}
	return out
}

// openRedirects opens the missing listeners: one per redirect on every
// bridge's gateway (netMu held). The bridges must exist.
func (r *Runtime) openRedirects() error {
	if len(r.redirects) == 0 {
		return nil
	}
	if r.gwListeners == nil {
		r.gwListeners = map[gwKey]*gwListener{}
	}
	for bridge, gw := range r.bridgeGateways() {
		for _, rd := range r.redirects {
			k := gwKey{bridge, rd.Addr}
			if r.gwListeners[k] != nil {
				continue
			}
			ln, err := net.Listen("tcp4", netip.AddrPortFrom(gw, 0).String())
			if err != nil {
				return fmt.Errorf("listen on the gateway of %s: %w", bridge, err)
			}
			at := ln.Addr().(*net.TCPAddr).AddrPort()
			r.gwListeners[k] = &gwListener{at: netip.AddrPortFrom(at.Addr().Unmap(), at.Port()), ln: ln}
			go r.serveRedirect(ln, bridge, rd)
		}
	}
	return nil
}

// closeRedirects closes the listeners whose key match reports (netMu
// held).
func (r *Runtime) closeRedirects(match func(gwKey) bool) {
	for k, l := range r.gwListeners {
		if match(k) {
			l.ln.Close()
			delete(r.gwListeners, k)
		}
	}
}

// serveRedirect accepts rd's connections arriving on bridge's gateway.
func (r *Runtime) serveRedirect(ln net.Listener, bridge string, rd Redirect) {
	acceptLoop(ln, func(c net.Conn) {
		src, ok := c.RemoteAddr().(*net.TCPAddr)
		id := ""
		if ok {
			id, ok = r.GroupByAddr(bridge, src.AddrPort().Addr().Unmap())
		}
		if !ok {
			c.Close()
			return
		}
		go rd.Serve(id, c)
	})
}

// GroupByAddr returns the group whose address on bridge (a bridge of the
// default network or of a network added with EnsureNetwork) is ip. ok is
// false when no running group of that bridge has that address (or, during
// a hand-over, more than one claims it).
func (r *Runtime) GroupByAddr(bridge string, ip netip.Addr) (groupID string, ok bool) {
	for id, g := range r.liveGroups() {
		g.mu.Lock()
		match := g.bridge == bridge && g.addr == ip && ip.IsValid()
		g.mu.Unlock()
		if match {
			if ok {
				return "", false
			}
			groupID, ok = id, true
		}
	}
	return groupID, ok
}

// groupAddr is where group id is: its address, its bridge and that bridge's
// gateway, from its record.
func (r *Runtime) groupAddr(id string) (addr netip.Addr, bridge string, gw netip.Addr, err error) {
	rec, err := r.readRecord(id)
	if err != nil {
		return netip.Addr{}, "", netip.Addr{}, err
	}
	addr, err = netip.ParseAddr(rec.IP)
	if err != nil {
		return netip.Addr{}, "", netip.Addr{}, fmt.Errorf("group %q: address %q: %w", id, rec.IP, err)
	}
	nw, err := r.networkFor(rec)
	if err != nil {
		return netip.Addr{}, "", netip.Addr{}, err
	}
	return addr, nw.bridge, gatewayOf(nw.prefix), nil
}

// routeRedirects routes the addresses of rds through gw in group id's
// namespace; a failure is logged (the group runs without them).
func (r *Runtime) routeRedirects(id string, gw netip.Addr, rds []Redirect) {
	if len(rds) == 0 {
		return
	}
	_, err := inNetNS(r.netnsPath(id), func() (struct{}, error) {
		for _, rd := range rds {
			if err := addRoute(netip.PrefixFrom(rd.Addr.Addr(), 32), gw); err != nil {
				return struct{}{}, fmt.Errorf("route %s via %s: %w", rd.Addr.Addr(), gw, err)
			}
		}
		return struct{}{}, nil
	})
	if err != nil {
		r.log.Warn("redirect into group failed", "group", id, "err", err)
	}
}

// redirectsNow is a copy of the redirects.
func (r *Runtime) redirectsNow() []Redirect {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	return append([]Redirect(nil), r.redirects...)
}
