package dns

import (
	"net"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

func query(t *testing.T, network, addr, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", network, name, err)
	}
	return r
}

func newServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s := New(cfg)
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	addr, _ := s.Addr("127.0.0.1:0")
	return s, addr
}

func TestOwnZone(t *testing.T) {
	s, addr := newServer(t, Config{Upstreams: []string{}})
	s.Set("Web.WestEurope.azurecontainer.io", "10.213.0.5")
	for _, network := range []string{"udp", "tcp"} {
		// tcp: the same port on TCP
		r := query(t, network, addr, "web.westeurope.azurecontainer.io.", mdns.TypeA)
		if r.Rcode != mdns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "10.213.0.5" {
			t.Fatalf("%s: A answer %v", network, r)
		}
	}
	r := query(t, "udp", addr, "WEB.westeurope.AZURECONTAINER.io.", mdns.TypeA)
	if len(r.Answer) != 1 || r.Answer[0].Header().Name != "WEB.westeurope.AZURECONTAINER.io." {
		t.Errorf("mixed case: %v", r)
	}
	if r := query(t, "udp", addr, "web.westeurope.azurecontainer.io.", mdns.TypeAAAA); r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Errorf("AAAA of a known name: %v", r)
	}
	if r := query(t, "udp", addr, "westeurope.azurecontainer.io.", mdns.TypeA); r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("region node: %v", r)
	}
	if r := query(t, "udp", addr, "nope.westeurope.azurecontainer.io.", mdns.TypeA); r.Rcode != mdns.RcodeNameError || !r.Authoritative || len(r.Ns) != 1 {
		t.Errorf("unknown label: %v", r)
	}
	if r := query(t, "udp", addr, "azurecontainer.io.", mdns.TypeSOA); len(r.Answer) != 1 {
		t.Errorf("SOA: %v", r)
	}
	s.Set("web.westeurope.azurecontainer.io", "")
	if r := query(t, "udp", addr, "web.westeurope.azurecontainer.io.", mdns.TypeA); r.Rcode != mdns.RcodeNameError {
		t.Errorf("removed name: %v", r)
	}
}

// TestForward forwards to a resolver on loopback (a .invalid name, which
// nothing outside this test could answer).
func TestForward(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Answer = []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5}, A: net.IPv4(127, 0, 0, 9)}}
		w.WriteMsg(m)
	})}
	go up.ActivateAndServe()
	defer up.Shutdown()
	_, addr := newServer(t, Config{Upstreams: []string{pc.LocalAddr().String()}})
	r := query(t, "udp", addr, "forwarded.invalid.", mdns.TypeA)
	if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "127.0.0.9" || r.Authoritative {
		t.Fatalf("forwarded: %v", r)
	}
}

// TestUpstreamDown: SERVFAIL when the upstream does not answer (a closed
// loopback port), and when there is none.
func TestUpstreamDown(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	_, addr := newServer(t, Config{Upstreams: []string{dead}, Timeout: 500 * time.Millisecond})
	if r := query(t, "udp", addr, "down.invalid.", mdns.TypeA); r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("dead upstream: %v", r)
	}
	_, addr = newServer(t, Config{ResolvConf: "/nonexistent/resolv.conf"})
	if r := query(t, "udp", addr, "none.invalid.", mdns.TypeA); r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("no upstream: %v", r)
	}
}

func TestListenTwiceAndUnlisten(t *testing.T) {
	s := New(Config{Upstreams: []string{}})
	defer s.Close()
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	addr, _ := s.Addr("127.0.0.1:0")
	s.Unlisten("127.0.0.1:0")
	if s.Listening("127.0.0.1:0") {
		t.Fatal("still listening")
	}
	c := &mdns.Client{Net: "tcp", Timeout: time.Second}
	m := new(mdns.Msg)
	m.SetQuestion("x.azurecontainer.io.", mdns.TypeA)
	if _, _, err := c.Exchange(m, addr); err == nil {
		t.Fatal("answered after Unlisten")
	}
}
