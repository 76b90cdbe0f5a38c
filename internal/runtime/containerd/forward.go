package containerd

import (
	"errors"
	"strconv"

	"io"
	"net"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/runtime"
)

// Forward makes an address on the host reachable at an address inside every
// group's network namespace: berth listens on Listen inside the namespace
// and relays each connection to Target, dialled from berth's own (host)
// namespace. This is how a registry's login server 127.0.0.1:PORT means the
// same thing inside a group as on the host, with no DNS or /etc/hosts
// change.
//
// A forward with Serve set is an in-group endpoint instead: each connection
// accepted inside a group is handed to Serve with the id of the group it
// came from (berth's metadata endpoint at 169.254.169.254:80; a per-group
// decision on whether to relay). An address the namespace lacks (such as
// 169.254.169.254) is added to its loopback.
type Forward struct {
	Listen string // host:port inside the group, e.g. "127.0.0.1:7444"
	Target string // host:port on the host, e.g. "127.0.0.1:7444"; unused with Serve
	// Serve, when set, handles each connection (on its own goroutine)
	// instead of the relay to Target. It owns c (closing it is its job; the
	// runtime also closes it when the group's forwards stop, and waits for
	// Serve to return) and may return before c is done.
	Serve func(groupID string, c net.Conn)
}

// forwarder is one group's running forwards.
type forwarder struct {
	mu        sync.Mutex
	listeners map[string]net.Listener // by Forward.Listen
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
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
// the group's containers declare. It replaces any that are running (after a
// namespace was recreated).
func (r *Runtime) startForwards(id string, g *group, spec runtime.GroupSpec) {
	g.stopForwards()
	ports := map[string]bool{}
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			ports[strconv.Itoa(p.Port)] = true
		}
	}
	r.fwMu.Lock()
	defer r.fwMu.Unlock()
	fw := &forwarder{listeners: map[string]net.Listener{}, conns: map[net.Conn]struct{}{}}
	g.mu.Lock()
	g.ports = ports
	g.forwards = fw
	g.mu.Unlock()
	for _, f := range r.forwards {
		r.openForward(fw, id, g, f)
	}
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
	g.mu.Unlock()
	if fw != nil {
		fw.close()
	}
}

func (fw *forwarder) serve(ln net.Listener, id string, f Forward) {
	defer fw.wg.Done()
	delay := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does.
			time.Sleep(delay)
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		if f.Serve != nil {
			if tc := fw.hand(c); tc != nil {
				fw.wg.Add(1)
				go func() {
					defer fw.wg.Done()
					f.Serve(id, tc)
				}()
			}
			continue
		}
		fw.wg.Add(1)
		go fw.relay(c, f.Target)
	}
}

// handedConn is a connection given to a Forward's Serve: tracked (closed
// when the group's forwards stop) until it is closed.
type handedConn struct {
	net.Conn
	fw   *forwarder
	once sync.Once
}

func (c *handedConn) Close() error {
	c.once.Do(func() { c.fw.track(c.Conn, false) })
	return c.Conn.Close()
}

// hand tracks c for Serve; nil (and c closed) if the forwards stopped.
func (fw *forwarder) hand(c net.Conn) net.Conn {
	if !fw.track(c, true) {
		c.Close()
		return nil
	}
	return &handedConn{Conn: c, fw: fw}
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
	defer out.Close()
	if !fw.track(in, true) || !fw.track(out, true) {
		return
	}
	defer fw.track(in, false)
	defer fw.track(out, false)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
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
