// Package dns is berth's DNS server for its container groups. It is
// authoritative for azurecontainer.io: `<dnsNameLabel>.<region>.azurecontainer.io`
// answers with the group's address (A records, published with Set, as
// aci.Names), every other name in the zone is NXDOMAIN. Every other name is
// forwarded to the host's resolvers (from /etc/resolv.conf); when none
// answers within the timeout the client gets SERVFAIL, quickly.
//
// It listens, UDP and TCP, on addresses the caller picks (Listen): berth
// puts it on the gateway address of each of its bridges, where groups find
// it in their resolv.conf and the host can query it too. Built on
// github.com/miekg/dns.
package dns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// Zone is the zone berth answers for.
const Zone = "azurecontainer.io."

// Config configures a Server.
type Config struct {
	// Upstreams are the resolvers (host:port) other names are forwarded
	// to; nil: the nameservers of ResolvConf.
	Upstreams []string
	// ResolvConf is read when Upstreams is nil; default /etc/resolv.conf.
	ResolvConf string
	// Timeout bounds a forwarded query over all upstreams; default 2 s.
	Timeout time.Duration
	// TTL of berth's own records, in seconds; default 10 (addresses change
	// when a group restarts).
	TTL uint32
	Log *slog.Logger
}

// Server answers DNS queries. Create it with New; it serves nothing until
// Listen.
type Server struct {
	cfg       Config
	upstreams []string

	mu    sync.RWMutex
	names map[string]netip.Addr // fqdn, lower case with the final dot

	lmu       sync.Mutex
	listeners map[string]*listener // by address
	closed    bool
}

type listener struct{ udp, tcp *mdns.Server }

// New returns a server. Its upstream resolvers are fixed now (from
// Config.Upstreams or the resolv.conf).
func New(cfg Config) *Server {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.TTL == 0 {
		cfg.TTL = 10
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	s := &Server{cfg: cfg, names: map[string]netip.Addr{}, listeners: map[string]*listener{}}
	s.upstreams = cfg.Upstreams
	if s.upstreams == nil {
		if cc, err := mdns.ClientConfigFromFile(cfg.ResolvConf); err == nil {
			for _, ns := range cc.Servers {
				s.upstreams = append(s.upstreams, net.JoinHostPort(ns, cc.Port))
			}
		} else {
			cfg.Log.Warn("no upstream resolvers: names outside azurecontainer.io will fail", "err", err)
		}
	}
	return s
}

// Set points fqdn at ip (both as the container-group service knows them:
// lower or mixed case, no final dot); ip "" removes the name. It
// implements aci.Names.
func (s *Server) Set(fqdn, ip string) {
	name := mdns.Fqdn(strings.ToLower(fqdn))
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := netip.ParseAddr(ip)
	if ip == "" || err != nil || !a.Is4() {
		delete(s.names, name)
		return
	}
	s.names[name] = a
}

// Listen serves UDP and TCP on addr (host:port). Listening twice on one
// address is a no-op.
func (s *Server) Listen(addr string) error {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.closed {
		return errors.New("dns: closed")
	}
	if _, ok := s.listeners[addr]; ok {
		return nil
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("dns: listen udp %s: %w", addr, err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return fmt.Errorf("dns: listen tcp %s: %w", addr, err)
	}
	l := &listener{
		udp: &mdns.Server{PacketConn: pc, Handler: s},
		tcp: &mdns.Server{Listener: ln, Handler: s, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second},
	}
	for _, srv := range []*mdns.Server{l.udp, l.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		ended := make(chan error, 1)
		go func() {
			err := srv.ActivateAndServe()
			if err != nil {
				s.cfg.Log.Debug("dns listener ended", "addr", addr, "err", err)
			}
			ended <- err
		}()
		select {
		case <-started:
		case err := <-ended:
			pc.Close()
			ln.Close()
			return fmt.Errorf("dns: serve %s: %w", addr, err)
		}
	}
	s.listeners[addr] = l
	return nil
}

// Addr returns the UDP address the server listens on for addr (useful
// with port 0).
func (s *Server) Addr(addr string) (string, bool) {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	l, ok := s.listeners[addr]
	if !ok {
		return "", false
	}
	return l.udp.PacketConn.LocalAddr().String(), true
}

// Listening reports whether the server listens on addr.
func (s *Server) Listening(addr string) bool {
	_, ok := s.Addr(addr)
	return ok
}

// Unlisten stops serving on addr (nothing to stop is fine).
func (s *Server) Unlisten(addr string) {
	s.lmu.Lock()
	l, ok := s.listeners[addr]
	delete(s.listeners, addr)
	s.lmu.Unlock()
	if ok {
		l.shutdown()
	}
}

func (l *listener) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.udp.ShutdownContext(ctx)
	_ = l.tcp.ShutdownContext(ctx)
}

// Close stops every listener.
func (s *Server) Close() error {
	s.lmu.Lock()
	ls := s.listeners
	s.listeners = map[string]*listener{}
	s.closed = true
	s.lmu.Unlock()
	for _, l := range ls {
		l.shutdown()
	}
	return nil
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	if len(r.Question) != 1 || r.Opcode != mdns.OpcodeQuery {
		m := new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeNotImplemented)
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	if mdns.IsSubDomain(Zone, name) {
		_ = w.WriteMsg(s.answer(r, name, q.Qtype))
		return
	}
	_ = w.WriteMsg(s.forward(r, w.LocalAddr().Network()))
}

func (s *Server) soa() mdns.RR {
	return &mdns.SOA{
		Hdr: mdns.RR_Header{Name: Zone, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: s.cfg.TTL},
		Ns:  "ns." + Zone, Mbox: "hostmaster." + Zone, Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: s.cfg.TTL,
	}
}

// answer is the authoritative answer for a name in the zone.
func (s *Server) answer(r *mdns.Msg, name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	s.mu.RLock()
	a, ok := s.names[name]
	s.mu.RUnlock()
	switch {
	case ok && (qtype == mdns.TypeA || qtype == mdns.TypeANY):
		m.Answer = []mdns.RR{&mdns.A{
			Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: s.cfg.TTL},
			A:   a.AsSlice(),
		}}
	case name == Zone && qtype == mdns.TypeSOA:
		m.Answer = []mdns.RR{s.soa()}
	case ok || name == Zone || s.hasBelow(name):
		m.Ns = []mdns.RR{s.soa()} // the name exists, without this type
	default:
		m.Rcode = mdns.RcodeNameError
		m.Ns = []mdns.RR{s.soa()}
	}
	return m
}

// hasBelow reports whether some record lies below name (an empty
// non-terminal such as <region>.azurecontainer.io answers NOERROR).
func (s *Server) hasBelow(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for n := range s.names {
		if strings.HasSuffix(n, "."+name) {
			return true
		}
	}
	return false
}

// forward asks the upstream resolvers, over the client's transport
// (retrying over TCP when a UDP answer is truncated), and answers SERVFAIL
// when none answers in time.
func (s *Server) forward(r *mdns.Msg, network string) *mdns.Msg {
	fail := func() *mdns.Msg {
		m := new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeServerFailure)
		return m
	}
	ups := s.usableUpstreams()
	if len(ups) == 0 {
		return fail()
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	if network != "tcp" {
		network = "udp"
	}
	for _, up := range ups {
		c := &mdns.Client{Net: network, Timeout: s.cfg.Timeout}
		resp, _, err := c.ExchangeContext(ctx, r, up)
		if err == nil && resp.Truncated && network == "udp" {
			c.Net = "tcp"
			resp, _, err = c.ExchangeContext(ctx, r, up)
		}
		if err == nil {
			resp.Id = r.Id
			return resp
		}
		s.cfg.Log.Debug("dns upstream failed", "upstream", up, "err", err)
		if ctx.Err() != nil {
			break
		}
	}
	return fail()
}

// usableUpstreams leaves out the server's own addresses (no loops).
func (s *Server) usableUpstreams() []string {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	var out []string
	for _, u := range s.upstreams {
		own := false
		for _, l := range s.listeners {
			if l.udp.PacketConn.LocalAddr().String() == u {
				own = true
			}
		}
		if !own {
			out = append(out, u)
		}
	}
	return out
}
