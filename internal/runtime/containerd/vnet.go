package containerd

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/berth-dev/berth/internal/fileutil"
	"github.com/berth-dev/berth/internal/runtime"
)

// Network is a network groups can join besides the default one: one
// virtual-network subnet. Its groups get addresses from Prefix (from the
// fourth address on, as Azure hands them out) on a bridge of its own; groups
// reach the groups of every network with the same Domain (the subnets of one
// virtual network) and no other network's, nor the default network's.
type Network struct {
	// Name identifies the network (GroupSpec.Network); any string.
	Name string `json:"name"`
	// Domain groups networks that reach each other (a virtual network id).
	Domain string `json:"domain"`
	// Prefix is the subnet, e.g. 10.1.2.0/24 (at most /29).
	Prefix netip.Prefix `json:"prefix"`
}

// ErrNetworkInUse is returned by RemoveNetwork while groups are attached.
var ErrNetworkInUse = errors.New("network in use")

// vnet is a Network the runtime manages.
type vnet struct {
	Network
	net *network
}

var netPrefixRule = regexp.MustCompile(`^[a-z][a-z0-9]{3}$`)

// tag is a short, stable, interface-name-safe digest of s.
func tag(s string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(s)))
	return strings.ToLower(base32.StdEncoding.EncodeToString(sum[:]))[:6]
}

// bridgeOf names n's bridge: the runtime's 4-character prefix, then 5
// characters of the domain's tag, then 6 of the name's (15 characters, the
// kernel's limit). Networks of one domain share their first 9 characters
// (domainOf), which is what the firewall matches on.
func (r *Runtime) bridgeOf(n Network) string {
	return r.cfg.NetworkPrefix + tag(n.Domain)[:5] + tag(n.Name)
}

// domainOf is the part of a network's bridge name its domain determines.
func (r *Runtime) domainOf(bridge string) string { return bridge[:len(r.cfg.NetworkPrefix)+5] }

func (r *Runtime) vnetDir() string { return filepath.Join(r.cfg.DataDir, "vnets") }

// initNetworks creates the default bridge (so its gateway address exists
// before the first group, for berth's DNS server) and re-creates every
// network a previous run made, with the firewall keeping them apart.
func (r *Runtime) initNetworks(ctx context.Context) error {
	if !netPrefixRule.MatchString(r.cfg.NetworkPrefix) {
		return fmt.Errorf("network prefix %q: want 4 characters, [a-z][a-z0-9]{3}", r.cfg.NetworkPrefix)
	}
	if strings.HasPrefix(r.cfg.BridgeName, r.cfg.NetworkPrefix) {
		return fmt.Errorf("bridge name %q must not start with the network prefix %q", r.cfg.BridgeName, r.cfg.NetworkPrefix)
	}
	if err := r.initShards(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(r.vnetDir(), 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(r.vnetDir())
	if err != nil {
		return err
	}
	r.nets = map[string]*vnet{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(r.vnetDir(), e.Name()))
		if err != nil {
			return err
		}
		var n Network
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("network record %s: %w", e.Name(), err)
		}
		v, err := r.makeVnet(n)
		if err != nil {
			return err
		}
		if err := ensureBridge(ctx, v.net.bridge, n.Prefix); err != nil {
			return err
		}
		r.nets[n.Name] = v
	}
	return r.syncFirewall(ctx)
}

func (r *Runtime) makeVnet(n Network) (*vnet, error) {
	if !n.Prefix.IsValid() || n.Prefix != n.Prefix.Masked() || !n.Prefix.Addr().Is4() || n.Prefix.Bits() > 29 {
		return nil, fmt.Errorf("network %q: prefix %s: want an IPv4 network of at most /29", n.Name, n.Prefix)
	}
	start := n.Prefix.Addr().Next().Next().Next().Next()
	nw, err := newNetworkRange(r.cfg.CNIPluginDir, filepath.Join(r.cfg.DataDir, "cni"), r.bridgeOf(n), n.Prefix, start, netip.Prefix{})
	if err != nil {
		return nil, err
	}
	return &vnet{Network: n, net: nw}, nil
}

// EnsureNetwork creates network n (bridge, address range, firewall rules,
// redirect listeners)
// or, if it exists, checks it is the same. It is idempotent and survives
// restarts (New re-creates networks). Its cost is a few commands the first
// time and nothing afterwards.
func (r *Runtime) EnsureNetwork(ctx context.Context, n Network) error {
	if n.Name == "" {
		return errors.New("network: empty name")
	}
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if old, ok := r.nets[n.Name]; ok {
		if old.Prefix != n.Prefix || old.Domain != n.Domain {
			return fmt.Errorf("network %q exists with prefix %s in another domain or with another prefix; remove it first", n.Name, old.Prefix)
		}
		return nil
	}
	v, err := r.makeVnet(n)
	if err != nil {
		return err
	}
	for _, o := range r.nets {
		if o.net.bridge == v.net.bridge {
			return fmt.Errorf("network %q: bridge name %s collides with network %q", n.Name, v.net.bridge, o.Name)
		}
		if o.Prefix.Overlaps(n.Prefix) {
			return fmt.Errorf("network %q: prefix %s overlaps network %q (%s)", n.Name, n.Prefix, o.Name, o.Prefix)
		}
	}
	if r.subnet.Overlaps(n.Prefix) {
		return fmt.Errorf("network %q: prefix %s overlaps the default network %s", n.Name, n.Prefix, r.subnet)
	}
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(filepath.Join(r.vnetDir(), v.net.bridge+".json"), b, 0o600); err != nil {
		return err
	}
	r.nets[n.Name] = v
	err = ensureBridge(ctx, v.net.bridge, n.Prefix)
	if err == nil {
		err = r.openRedirects()
	}
	if err == nil {
		err = r.syncFirewall(ctx)
	}
	if err != nil {
		delete(r.nets, n.Name)
		r.closeRedirects(func(k gwKey) bool { return k.bridge == v.net.bridge })
		os.Remove(filepath.Join(r.vnetDir(), v.net.bridge+".json"))
		deleteLink(ctx, v.net.bridge)
		if ferr := r.syncFirewall(ctx); ferr != nil {
			r.log.Warn("firewall after a failed network create", "err", ferr)
		}
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	return nil
}

// RemoveNetwork removes a network made by EnsureNetwork: its bridge, its
// address reservations, its firewall rules and its redirect listeners. Unknown names succeed;
// ErrNetworkInUse while a group is attached.
func (r *Runtime) RemoveNetwork(ctx context.Context, name string) error {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	v, ok := r.nets[name]
	if !ok {
		return nil
	}
	resv := filepath.Join(r.cfg.DataDir, "cni", "networks", v.net.bridge)
	entries, err := os.ReadDir(resv)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			return fmt.Errorf("network %q: %w (address %s is held)", name, ErrNetworkInUse, e.Name())
		}
	}
	delete(r.nets, name)
	r.closeRedirects(func(k gwKey) bool { return k.bridge == v.net.bridge })
	if err := r.syncFirewall(ctx); err != nil {
		r.nets[name] = v
		if oerr := r.openRedirects(); oerr != nil {
			r.log.Warn("redirects after a failed network removal", "network", name, "err", oerr)
		}
		return err
	}
	if err := deleteLink(ctx, v.net.bridge); err != nil {
		return err
	}
	if err := os.RemoveAll(resv); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(r.vnetDir(), v.net.bridge+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Networks lists the networks made by EnsureNetwork.
func (r *Runtime) Networks() []Network {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	out := make([]Network, 0, len(r.nets))
	for _, v := range r.nets {
		out = append(out, v.Network)
	}
	return out
}

// Gateway is the host's address on network name ("" for the default
// network, its first bridge; see DefaultGateways for all): where groups of
// that network reach the host (and berth's DNS server). ok is false for an
// unknown network.
func (r *Runtime) Gateway(name string) (addr netip.Addr, ok bool) {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if name == "" {
		return gatewayOf(r.shards[0].Prefix), true
	}
	v, ok := r.nets[name]
	if !ok {
		return netip.Addr{}, false
	}
	return gatewayOf(v.Prefix), true
}

// Bridge names the Linux bridge of network name ("" for the default
// network's first; see DefaultBridges for all).
func (r *Runtime) Bridge(name string) (string, bool) {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if name == "" {
		return r.shards[0].Bridge, true
	}
	v, ok := r.nets[name]
	if !ok {
		return "", false
	}
	return v.net.bridge, true
}

// networkFor returns the network a group with record rec has joined: a
// virtual network's, or the shard of the default network rec.Bridge names.
func (r *Runtime) networkFor(rec *record) (*network, error) {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if rec.Network == "" {
		s := r.shardFor(rec.Bridge)
		if s == nil {
			return nil, fmt.Errorf("group %q: bridge %q: %w", rec.ID, rec.Bridge, errNoShard)
		}
		return s.net, nil
	}
	v, ok := r.nets[rec.Network]
	if !ok {
		return nil, fmt.Errorf("network %q: %w", rec.Network, runtime.ErrNotFound)
	}
	return v.net, nil
}

// attach picks the network for a group about to be attached: its virtual
// network's, or a shard of the default network with room (recorded in
// rec.Bridge). done must be called with the outcome of the attachment.
func (r *Runtime) attach(ctx context.Context, rec *record) (nw *network, done func(ok bool), err error) {
	if rec.Network != "" {
		nw, err := r.networkFor(rec)
		return nw, func(bool) {}, err
	}
	r.netMu.Lock()
	defer r.netMu.Unlock()
	s, err := r.takeShard(ctx)
	if err != nil {
		return nil, nil, err
	}
	rec.Bridge = s.Bridge
	if s.Index == 0 {
		rec.Bridge = "" // as before sharding
	}
	return s.net, func(ok bool) {
		if !ok {
			r.netMu.Lock()
			s.used--
			r.netMu.Unlock()
		}
	}, nil
}

// HostPrefixes lists the IPv4 prefixes a new network must not overlap:
// every route of the host's main table except the default route and the
// runtime's own networks (the default network included), plus the ranges no
// network may use (loopback, link-local, multicast, broadcast).
func (r *Runtime) HostPrefixes() ([]netip.Prefix, error) {
	routes, err := readRoutes("/proc/net/route")
	if err != nil {
		return nil, err
	}
	own := map[netip.Prefix]bool{}
	r.netMu.Lock()
	for _, v := range r.nets {
		own[v.Prefix] = true
	}
	r.netMu.Unlock()
	out := []netip.Prefix{r.subnet}
	for _, p := range routes {
		if p.Bits() == 0 || own[p] || r.subnet.Contains(p.Addr()) && p.Bits() >= r.subnet.Bits() {
			continue
		}
		out = append(out, p)
	}
	return append(out, reservedPrefixes...), nil
}

var reservedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("255.255.255.255/32"), netip.MustParsePrefix("168.63.129.16/32"),
}

// readRoutes parses /proc/net/route (destinations and masks are
// little-endian hex).
func readRoutes(path string) ([]netip.Prefix, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 8 {
			continue
		}
		dst, err1 := leHex(f[1])
		mask, err2 := leHex(f[7])
		if err1 != nil || err2 != nil {
			continue
		}
		bits := 0
		for m := mask; m&0x80000000 != 0; m <<= 1 {
			bits++
		}
		a := netip.AddrFrom4([4]byte{byte(dst >> 24), byte(dst >> 16), byte(dst >> 8), byte(dst)})
		out = append(out, netip.PrefixFrom(a, bits).Masked())
	}
	return out, nil
}

// leHex decodes a little-endian 32-bit hex word into a big-endian uint32.
func leHex(s string) (uint32, error) {
	var v uint32
	if _, err := fmt.Sscanf(s, "%08X", &v); err != nil {
		return 0, err
	}
	return v>>24 | (v>>8)&0xff00 | (v<<8)&0xff0000 | v<<24, nil
}

// ensureBridge creates bridge name with the gateway address of prefix and
// brings it up; an existing bridge gets the address if it lacks it.
func ensureBridge(ctx context.Context, name string, prefix netip.Prefix) error {
	if _, err := os.Stat("/sys/class/net/" + name); errors.Is(err, os.ErrNotExist) {
		if err := ipCmd(ctx, "link", "add", "name", name, "type", "bridge"); err != nil && !strings.Contains(err.Error(), "File exists") {
			return err
		}
	}
	gw := netip.PrefixFrom(gatewayOf(prefix), prefix.Bits())
	if !hasAddr(name, gw) {
		// An address covering more (berth0 on the whole subnet, from before
		// the default network was sharded) is kept as it is.
		if err := ipCmd(ctx, "addr", "add", gw.String(), "dev", name); err != nil {
			return err
		}
	}
	return ipCmd(ctx, "link", "set", name, "up")
}

// hasAddr reports whether interface name has address p, or p's address with
// a shorter prefix.
func hasAddr(name string, p netip.Prefix) bool {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return false
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ones, _ := n.Mask.Size()
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == p.Addr() && ones <= p.Bits() {
				return true
			}
		}
	}
	return false
}

// deleteLink removes an interface; a missing one is fine.
func deleteLink(ctx context.Context, name string) error {
	if _, err := os.Stat("/sys/class/net/" + name); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	err := ipCmd(ctx, "link", "delete", name)
	if err != nil && strings.Contains(err.Error(), "Cannot find device") {
		return nil
	}
	return err
}

func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// detach releases group id's address on the network it joined: the one its
// record names, else every network libcni has an attachment of id cached
// for, else the default network's first bridge.
func (r *Runtime) detach(ctx context.Context, id, netns string) error {
	var nws []*network
	var sh *shard // the default-network shard whose place is given back
	held := ""    // the reservation the group holds there
	if rec, err := r.readRecord(id); err == nil {
		if nw, err := r.networkFor(rec); err == nil {
			nws = append(nws, nw)
			if rec.Network == "" && rec.IP != "" {
				r.netMu.Lock()
				sh = r.shardFor(rec.Bridge)
				r.netMu.Unlock()
				held = filepath.Join(r.cfg.DataDir, "cni", "networks", sh.Bridge, rec.IP)
				if _, err := os.Stat(held); err != nil {
					sh = nil
				}
			}
		}
	}
	if len(nws) == 0 {
		r.netMu.Lock()
		nws = append(nws, r.shards[0].net)
		for _, s := range r.shards[1:] {
			if cachedOn(s.net, id) {
				nws = append(nws, s.net)
			}
		}
		for _, v := range r.nets {
			if cachedOn(v.net, id) {
				nws = append(nws, v.net)
			}
		}
		r.netMu.Unlock()
	}
	var errs []error
	for _, nw := range nws {
		errs = append(errs, nw.del(ctx, id, netns))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if sh != nil {
		r.netMu.Lock()
		if _, err := os.Stat(held); errors.Is(err, os.ErrNotExist) && sh.used > 0 {
			sh.used--
		}
		r.netMu.Unlock()
	}
	return nil
}

// cachedOn reports whether libcni has an attachment of group id to nw
// cached.
func cachedOn(nw *network, id string) bool {
	atts, err := nw.cni.GetCachedAttachments(id)
	if err != nil {
		return false
	}
	for _, a := range atts {
		if a.Network == nw.bridge {
			return true
		}
	}
	return false
}
