package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/fileutil"
)

// The default (public) network is sharded over several bridges, because one
// Linux bridge takes at most 1,023 ports (BR_MAX_PORTS, port 0 reserved).
// Shard 0 is Config.BridgeName (berth0); shards 1, 2, … are created on
// demand when every existing shard is full and are named
// "<NetworkPrefix>-<n>" (bvn0-1, …). Each shard has its own slice of
// Config.Subnet (a /22 for the default 1,000 groups per bridge; the first
// slice is shard 0's, so its gateway is the subnet's first address as
// before) and its own gateway. Groups of one shard talk on their bridge;
// groups of different shards reach each other through the host, by a route
// to the whole subnet through their gateway that every default-network
// group gets, and the firewall accepts traffic between shards (see
// firewall.go): the shards are one public network. A group's record names
// its shard's bridge (record.Bridge; empty means shard 0, which is where
// every group made before sharding is). Shards are recorded under shards/
// and re-created by New; the count of groups on each is the count of its
// host-local reservations.
//
// A data directory from before sharding has berth0 with the gateway on the
// whole subnet and possibly reservations anywhere in it: the address is left
// as it is (the shards' narrower routes win on the host), and a new shard
// never takes a slice holding one of those reservations.

// defaultBridgePorts is how many groups one shard takes (below the 1,023
// ports a bridge holds, leaving room).
const defaultBridgePorts = 1000

// shard is one bridge of the default network.
type shard struct {
	Index  int          `json:"index"`
	Bridge string       `json:"bridge"`
	Prefix netip.Prefix `json:"prefix"`
	net    *network
	used   int // attached groups (reservations); guarded by netMu
}

func (r *Runtime) shardDir() string { return filepath.Join(r.cfg.DataDir, "shards") }

// bridgePorts is the per-shard group limit (Config.bridgePorts in tests).
func (r *Runtime) bridgePorts() int {
	if r.cfg.bridgePorts > 0 {
		return r.cfg.bridgePorts
	}
	return defaultBridgePorts
}

// sliceBits is the prefix length of one shard's slice: the smallest block
// holding bridgePorts groups besides the network, gateway and broadcast
// addresses, but never wider than the subnet.
func (r *Runtime) sliceBits() int {
	b := 32 - bits.Len(uint(r.bridgePorts()+3-1))
	if b < r.subnet.Bits() {
		b = r.subnet.Bits()
	}
	if b > 30 {
		b = 30
	}
	return b
}

// capacity is how many groups shard s takes.
func (r *Runtime) capacity(s *shard) int {
	hosts := 1<<(32-s.Prefix.Bits()) - 3
	return min(hosts, r.bridgePorts())
}

// shardBridge names shard i's bridge.
func (r *Runtime) shardBridge(i int) string {
	if i == 0 {
		return r.cfg.BridgeName
	}
	return r.cfg.NetworkPrefix + "-" + strconv.Itoa(i)
}

func (r *Runtime) makeShard(i int, p netip.Prefix) (*shard, error) {
	s := &shard{Index: i, Bridge: r.shardBridge(i), Prefix: p}
	nw, err := newNetworkShard(r.cfg.CNIPluginDir, filepath.Join(r.cfg.DataDir, "cni"), s.Bridge, p, r.subnet)
	if err != nil {
		return nil, err
	}
	s.net = nw
	s.used = len(r.reservations(s.Bridge))
	return s, nil
}

// reservations lists the addresses host-local holds on bridge.
func (r *Runtime) reservations(bridge string) []netip.Addr {
	entries, _ := os.ReadDir(filepath.Join(r.cfg.DataDir, "cni", "networks", bridge))
	var out []netip.Addr
	for _, e := range entries {
		if a, err := netip.ParseAddr(e.Name()); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// initShards makes shard 0 and re-creates the shards a previous run made
// (netMu held).
func (r *Runtime) initShards(ctx context.Context) error {
	first := netip.PrefixFrom(r.subnet.Addr(), r.sliceBits())
	s0, err := r.makeShard(0, first)
	if err != nil {
		return err
	}
	if err := ensureBridge(ctx, s0.Bridge, first); err != nil {
		return err
	}
	r.shards = []*shard{s0}
	if err := os.MkdirAll(r.shardDir(), 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(r.shardDir())
	if err != nil {
		return err
	}
	var recs []shard
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(r.shardDir(), e.Name()))
		if err != nil {
			return err
		}
		var s shard
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("shard record %s: %w", e.Name(), err)
		}
		if s.Index < 1 || s.Bridge != r.shardBridge(s.Index) || !r.subnet.Contains(s.Prefix.Addr()) {
			return fmt.Errorf("shard record %s: does not fit this configuration (bridge %s, subnet %s)", e.Name(), r.cfg.BridgeName, r.subnet)
		}
		recs = append(recs, s)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Index < recs[j].Index })
	for _, rec := range recs {
		s, err := r.makeShard(rec.Index, rec.Prefix)
		if err != nil {
			return err
		}
		if err := ensureBridge(ctx, s.Bridge, s.Prefix); err != nil {
			return err
		}
		r.shards = append(r.shards, s)
	}
	return nil
}

// shardFor returns the shard named by a group's record ("" is shard 0), or
// nil.
func (r *Runtime) shardFor(bridge string) *shard {
	if bridge == "" {
		return r.shards[0]
	}
	for _, s := range r.shards {
		if s.Bridge == bridge {
			return s
		}
	}
	return nil
}

// takeShard reserves a place on the first shard with room, creating a new
// shard when all are full (netMu held). The caller attaches the group and
// gives the place back with s.used-- if that fails.
func (r *Runtime) takeShard(ctx context.Context) (*shard, error) {
	for _, s := range r.shards {
		if s.used < r.capacity(s) {
			s.used++
			return s, nil
		}
	}
	s, err := r.addShard(ctx)
	if err != nil {
		return nil, err
	}
	s.used++
	return s, nil
}

// addShard creates the next shard on the lowest free slice of the subnet
// (netMu held): its bridge, record, firewall rules and redirect listeners;
// then tells Config.OnBridge (berth's DNS server listens on its gateway).
func (r *Runtime) addShard(ctx context.Context) (*shard, error) {
	idx := 0
	taken := map[netip.Addr]bool{}
	var held []netip.Addr
	for _, s := range r.shards {
		idx = max(idx, s.Index)
		taken[s.Prefix.Addr()] = true
		held = append(held, r.reservations(s.Bridge)...)
	}
	idx++
	bitsN := r.sliceBits()
	step := uint32(1) << (32 - bitsN)
	base := r.subnet.Addr().As4()
	start := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	n := uint32(1) << (bitsN - r.subnet.Bits())
	var slice netip.Prefix
	for i := uint32(0); i < n && !slice.IsValid(); i++ {
		a := start + i*step
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), bitsN)
		if taken[p.Addr()] {
			continue
		}
		free := true
		for _, h := range held { // a reservation made before sharding
			if p.Contains(h) {
				free = false
				break
			}
		}
		if free {
			slice = p
		}
	}
	if !slice.IsValid() {
		return nil, fmt.Errorf("default network: subnet %s is full (%d bridges of %d groups)", r.subnet, len(r.shards), r.bridgePorts())
	}
	s, err := r.makeShard(idx, slice)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(r.shardDir(), s.Bridge+".json")
	if err := fileutil.WriteAtomic(path, b, 0o600); err != nil {
		return nil, err
	}
	r.shards = append(r.shards, s)
	err = ensureBridge(ctx, s.Bridge, s.Prefix)
	if err == nil {
		err = r.openRedirects()
	}
	if err == nil {
		err = r.syncFirewall(ctx)
	}
	if err != nil {
		r.shards = r.shards[:len(r.shards)-1]
		r.closeRedirects(func(k gwKey) bool { return k.bridge == s.Bridge })
		os.Remove(path)
		deleteLink(ctx, s.Bridge)
		if ferr := r.syncFirewall(ctx); ferr != nil {
			r.log.Warn("firewall after a failed shard create", "err", ferr)
		}
		return nil, fmt.Errorf("default network: bridge %s: %w", s.Bridge, err)
	}
	r.log.Info("default network: new bridge", "bridge", s.Bridge, "prefix", s.Prefix)
	groups := 0
	for _, s := range r.shards {
		groups += r.capacity(s)
	}
	r.fitHostLimits(groups)
	if r.cfg.OnBridge != nil {
		r.cfg.OnBridge(gatewayOf(s.Prefix))
	}
	return s, nil
}

// DefaultGateways lists the host's address on every bridge of the default
// network (one per shard), where berth's DNS server listens.
func (r *Runtime) DefaultGateways() []netip.Addr {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	out := make([]netip.Addr, 0, len(r.shards))
	for _, s := range r.shards {
		out = append(out, gatewayOf(s.Prefix))
	}
	return out
}

// DefaultBridges names the bridges of the default network, shard 0 first.
func (r *Runtime) DefaultBridges() []string {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	out := make([]string, 0, len(r.shards))
	for _, s := range r.shards {
		out = append(out, s.Bridge)
	}
	return out
}

// hostLimits are kernel settings a host running many groups needs, with
// what each must be at least for n groups. Linux's defaults suit about a
// thousand: 32,768 pids (each group is a shim and a process with their
// threads, some 16 pids), 1,024 neighbour entries (the host's ARP entries,
// one per group it talks to: DNS answers, probes, clients).
var hostLimits = []struct {
	path string
	min  func(n int) int
}{
	{"/proc/sys/kernel/pid_max", func(n int) int { return min(max(32768, 32*n), 4194304) }},
	{"/proc/sys/net/ipv4/neigh/default/gc_thresh1", func(n int) int { return n / 2 }},
	{"/proc/sys/net/ipv4/neigh/default/gc_thresh2", func(n int) int { return n }},
	{"/proc/sys/net/ipv4/neigh/default/gc_thresh3", func(n int) int { return 2 * n }},
}

// fitHostLimits raises the kernel settings of hostLimits that are too low
// for groups groups, saying so in the log (never lowering one).
func (r *Runtime) fitHostLimits(groups int) {
	for _, l := range hostLimits {
		b, err := os.ReadFile(l.path)
		if err != nil {
			continue
		}
		have, err := strconv.Atoi(strings.TrimSpace(string(b)))
		want := l.min(groups)
		if err != nil || have >= want {
			continue
		}
		name := strings.ReplaceAll(strings.TrimPrefix(l.path, "/proc/sys/"), "/", ".")
		if err := os.WriteFile(l.path, []byte(strconv.Itoa(want)), 0o644); err != nil {
			r.log.Warn("cannot raise a kernel limit for the default network's groups", "sysctl", name, "have", have, "want", want, "err", err)
			continue
		}
		r.log.Info("raised a kernel limit for the default network's groups", "sysctl", name, "from", have, "to", want, "groups", groups)
	}
}

// errNoShard: a record names a bridge the runtime does not have.
var errNoShard = errors.New("no such bridge in the default network")
