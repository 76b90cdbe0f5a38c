package server

import (
	"context"
	"log/slog"
	"net"
	"net/netip"

	"github.com/berth-dev/berth/internal/dns"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/runtime/containerd"
)

// netRuntime adapts the containerd runtime's networks to network.Runtime
// and keeps berth's DNS server listening on the gateway address of every
// bridge (the default one and each subnet's).
type netRuntime struct {
	rt  *containerd.Runtime
	dns *dns.Server
	log *slog.Logger
}

var _ network.Runtime = (*netRuntime)(nil)

func dnsAddr(gw netip.Addr) string { return net.JoinHostPort(gw.String(), "53") }

// listenAll puts the DNS server on every bridge that exists now: each of
// the default network's (the runtime adds more as groups need them and
// reports them through containerd.Config.OnBridge, which calls listenOn)
// and each subnet's. A gateway it cannot listen on (port 53 taken there) is
// logged: groups on that bridge then use the host's resolvers.
func (n *netRuntime) listenAll() {
	for _, gw := range n.rt.DefaultGateways() {
		n.listenOn("", gw)
	}
	for _, v := range n.rt.Networks() {
		n.listen(v.Name)
	}
}

func (n *netRuntime) listen(name string) {
	gw, ok := n.rt.Gateway(name)
	if !ok {
		return
	}
	n.listenOn(name, gw)
}

func (n *netRuntime) listenOn(name string, gw netip.Addr) {
	if err := n.dns.Listen(dnsAddr(gw)); err != nil {
		n.log.Warn("DNS server cannot listen on a bridge; its groups use the host's resolvers", "network", name, "gateway", gw, "err", err)
	}
}

func (n *netRuntime) EnsureNetwork(ctx context.Context, v network.RuntimeNetwork) error {
	if err := n.rt.EnsureNetwork(ctx, containerd.Network{Name: v.Name, Domain: v.Domain, Prefix: v.Prefix}); err != nil {
		return err
	}
	n.listen(v.Name)
	return nil
}

func (n *netRuntime) RemoveNetwork(ctx context.Context, name string) error {
	gw, ok := n.rt.Gateway(name)
	if !ok {
		return nil
	}
	n.dns.Unlisten(dnsAddr(gw))
	if err := n.rt.RemoveNetwork(ctx, name); err != nil {
		n.listen(name)
		return err
	}
	return nil
}

func (n *netRuntime) Networks(context.Context) ([]network.RuntimeNetwork, error) {
	var out []network.RuntimeNetwork
	for _, v := range n.rt.Networks() {
		out = append(out, network.RuntimeNetwork{Name: v.Name, Domain: v.Domain, Prefix: v.Prefix})
	}
	return out, nil
}

func (n *netRuntime) HostPrefixes(context.Context) ([]netip.Prefix, error) {
	return n.rt.HostPrefixes()
}

// Nameservers is what a group's default resolv.conf lists: berth's DNS
// server on the gateway of the group's network ("" the default network),
// or nothing when it does not listen there (the runtime then falls back to
// the host's resolvers).
func (n *netRuntime) Nameservers(name string) []string {
	gw, ok := n.rt.Gateway(name)
	if !ok {
		return nil
	}
	return n.nameserversAt(gw)
}

// nameserversAt is what the resolv.conf of a group whose bridge's gateway
// is gw lists: gw, if the DNS server listens there.
func (n *netRuntime) nameserversAt(gw netip.Addr) []string {
	if !gw.IsValid() || !n.dns.Listening(dnsAddr(gw)) {
		return nil
	}
	return []string{gw.String()}
}
