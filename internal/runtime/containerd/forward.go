package containerd

import (
	"errors"
	"strconv"

	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/runtime"
)

// Forward makes an address on the host reachable at an address inside every
// group's network namespace: berth listens on Listen inside the namespace
// and relays each connection to Target, dialled from berth's own (host)
// namespace. This is how a registry's login server 127.0.0.1:PORT means the
// same thing inside a group as on the host, with no DNS or /etc/hosts
// change. (A service that must leave every port of the group to its
// containers is a Redirect instead: see redirect.go.)
type Forward struct {
	Listen string // host:port inside the group, e.g. "127.0.0.1:7444"
	Target string // host:port on the host, e.g. "127.0.0.1:7444"
}

// forwarder is one group's running forwards.
type forwarder struct {
	mu        sync.Mutex
	listeners map[string]net.Listener // by Forward.Listen
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
	// who the relayed connections are for, recorded in callers while
	// they are open (see Caller).
	who     Caller
	callers *callers
}

// AddForward adds a forward to every group, running and future.
func (r *Runtime) AddForward(f Forward) error {
	r.fwMu.Lock()
	defer r.fwMu.Unlock()
	for _, have := range r.forwards {
		if have.Listen == f.Listen {
			return nil
		}
	}
	r.forwards = append(r.forwards, f)
	for id, g := range r.liveGroups() {
		g.mu.Lock()
		fw := g.forwards
		g.mu.Unlock()
		if fw != nil {
			r.openForward(fw, id, g, f)
		}
	}
	return nil
}

// openForward opens f in group id unless a container of the group declares
// that port (the container's own service wins); a failure is logged, not
// fatal: a group runs without a forward rather than not at all.
func (r *Runtime) openForward(fw *forwarder, id string, g *group, f Forward) {
	if _, port, err := net.SplitHostPort(f.Listen); err == nil {
		g.mu.Lock()
		taken := g.ports[port]
		g.mu.Unlock()
		if taken {
			r.log.Warn("not forwarding into group: a container uses the port", "group", id, "address", f.Listen)
			return
		}
	}
	if err := fw.open(r, id, f); err != nil {
		r.log.Warn("forward into group failed", "group", id, "address", f.Listen, "err", err)
	}
}

// RemoveForward removes the forward listening on listen from every group.
func (r *Runtime) RemoveForward(listen string) {
	r.fwMu.Lock()
	defer r.fwMu.Unlock()
	for i, f := range r.forwards {
		if f.Listen == listen {
			r.forwards = append(r.forwards[:i:i], r.forwards[i+1:]...)
			break
		}
	}
	for _, g := range r.liveGroups() {
		g.mu.Lock()
		fw := g.forwards
		g.mu.Unlock()
		if fw != nil {
			fw.closeOne(listen)
		}
	}
}

func (r *Runtime) liveGroups() map[string]*group {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]*group, len(r.groups))
	for id, g := range r.groups {
		out[id] = g
	}
	return out
}

// startForwards opens the forwards in group id's namespace, except on ports
// the group's containers declare, and routes the redirects' addresses
// there. It replaces any forwards that are running (after a namespace was
// recreated).
func (r *Runtime) startForwards(id string, g *group, spec runtime.GroupSpec) {
	g.stopForwards()
	ports := map[string]bool{}
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			ports[strconv.Itoa(p.Port)] = true
		}
	}
	addr, bridge, gw, err := r.groupAddr(id)
	if err != nil {
		r.log.Warn("group without an address: no redirects into it", "group", id, "err", err)
	}
	r.fwMu.Lock()
	defer r.fwMu.Unlock()
	fw := &forwarder{listeners: map[string]net.Listener{}, conns: map[net.Conn]struct{}{},
		who: r.callerFor(id, spec), callers: &r.callers}
	g.mu.Lock()
	g.ports = ports
	g.forwards = fw
	g.addr, g.bridge, g.gateway = addr, bridge, gw
	g.mu.Unlock()
	for _, f := range r.forwards {
		r.openForward(fw, id, g, f)
	}
	if gw.IsValid() {
		r.routeRedirects(id, gw, r.redirectsNow())
	}
}

// callerFor is whom group id's forwarded connections are for.
func (r *Runtime) callerFor(id string, spec runtime.GroupSpec) Caller {
	c := Caller{Group: id, Network: spec.Network}
	if rec, err := r.readRecord(id); err == nil {
		c.Addr, _ = netip.ParseAddr(rec.IP)
	}
	return c
}

// open starts one forward in group id's namespace.
func (fw *forwarder) open(r *Runtime, id string, f Forward) error {
	ln, err := r.Listen(id, "tcp", f.Listen)
	if err != nil {
		return err
	}
	fw.mu.Lock()
	if fw.conns == nil { // closed meanwhile
		fw.mu.Unlock()
		ln.Close()
		return nil
	}
	fw.listeners[f.Listen] = ln
	fw.wg.Add(1)
	fw.mu.Unlock()
	go fw.serve(ln, id, f)
	return nil
}

// closeOne stops one forward (connections already relayed finish).
func (fw *forwarder) closeOne(listen string) {
	fw.mu.Lock()
	if ln := fw.listeners[listen]; ln != nil {
		ln.Close()
		delete(fw.listeners, listen)
	}
	fw.mu.Unlock()
}

// stopForwards closes g's forwards and their connections.
func (g *group) stopForwards() {
	g.mu.Lock()
	fw := g.forwards
	g.forwards = nil
	g.addr, g.bridge, g.gateway = netip.Addr{}, "", netip.Addr{}
	g.mu.Unlock()
	if fw != nil {
		fw.close()
	}
}

// acceptLoop hands each connection ln accepts to handle until ln is
// closed. Other accept errors (out of file descriptors and the like) are
// waited out and retried, as net/http does.
func acceptLoop(ln net.Listener, handle func(net.Conn)) {
	delay := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(delay)
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		handle(c)
	}
}

func (fw *forwarder) serve(ln net.Listener, id string, f Forward) {
	defer fw.wg.Done()
	acceptLoop(ln, func(c net.Conn) {
		fw.wg.Add(1)
		go fw.relay(c, f.Target)
	})
}

func (fw *forwarder) track(c net.Conn, on bool) bool {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if on {
		if fw.conns == nil {
			return false // closed
		}
		fw.conns[c] = struct{}{}
	} else if fw.conns != nil {
		delete(fw.conns, c)
	}
	return true
}

func (fw *forwarder) relay(in net.Conn, target string) {
	defer fw.wg.Done()
	defer in.Close()
	out, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		return
	}
	if fw.callers != nil {
		out = fw.callers.track(out, fw.who) // before the first byte
	}
	defer out.Close()
	if !fw.track(in, true) || !fw.track(out, true) {
		return
	}
	defer fw.track(in, false)
	defer fw.track(out, false)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}

func (fw *forwarder) close() {
	fw.mu.Lock()
	for _, ln := range fw.listeners {
		ln.Close()
	}
	for c := range fw.conns {
		c.Close()
	}
	fw.conns = nil
	fw.mu.Unlock()
	fw.wg.Wait()
}
