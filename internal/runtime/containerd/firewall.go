package containerd

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
)

// The firewall keeps virtual networks apart. Routed traffic between berth's
// bridges passes the host's FORWARD chain, which jumps to a chain of this
// runtime's own (BERTH-<default bridge>) first. That chain accepts traffic
// between bridges of one domain (their names share prefix+domain tag, so one
// wildcard rule per domain covers every subnet of a virtual network) and
// drops traffic between any other pair of berth's bridges, the default
// (public) bridge included. The default network's own bridges (its shards:
// the default bridge and <prefix>-<n>, see shards.go) accept each other's
// traffic before those drops. The host is not routed through FORWARD, so it
// reaches every group. The chain exists only while networks or shards do:
// with none, it and its jump are removed and the host's rules are as berth
// found them.
// Rebuilds replace the chain's rules in one iptables-restore transaction.

func (r *Runtime) chainName() string { return "BERTH-" + r.cfg.BridgeName }

// syncFirewall makes the chains match r.nets, r.shards and the redirect
// listeners (netMu held).
func (r *Runtime) syncFirewall(ctx context.Context) error {
	chain := r.chainName()
	if len(r.nets) == 0 && len(r.shards) < 2 && len(r.gwListeners) == 0 {
		return r.removeFirewall(ctx)
	}
	domains := map[string]bool{}
	for _, v := range r.nets {
		domains[r.domainOf(v.net.bridge)] = true
	}
	var ds []string
	for d := range domains {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	all := r.cfg.NetworkPrefix + "+" // the networks' bridges and the shards after the first
	var b strings.Builder
	fmt.Fprintf(&b, "*filter\n:%s - [0:0]\n", chain)
	for _, rd := range r.redirects {
		for _, in := range []string{all, r.cfg.BridgeName} {
			fmt.Fprintf(&b, "-A %s -i %s -d %s/32 -j DROP\n", chain, in, rd.Addr.Addr())
		}
	}
	for _, d := range ds {
		fmt.Fprintf(&b, "-A %s -i %s+ -o %s+ -j ACCEPT\n", chain, d, d)
	}
	if len(r.shards) > 1 {
		// The default network's bridges are one network.
		shards := r.shardBridge(1)
		shards = shards[:len(shards)-1] + "+"
		fmt.Fprintf(&b, "-A %s -i %s -o %s -j ACCEPT\n", chain, shards, shards)
		fmt.Fprintf(&b, "-A %s -i %s -o %s -j ACCEPT\n", chain, shards, r.cfg.BridgeName)
		fmt.Fprintf(&b, "-A %s -i %s -o %s -j ACCEPT\n", chain, r.cfg.BridgeName, shards)
	}
	fmt.Fprintf(&b, "-A %s -i %s -o %s -j DROP\n", chain, all, all)
	fmt.Fprintf(&b, "-A %s -i %s -o %s -j DROP\n", chain, all, r.cfg.BridgeName)
	fmt.Fprintf(&b, "-A %s -i %s -o %s -j DROP\n", chain, r.cfg.BridgeName, all)
	b.WriteString("COMMIT\n")
	fmt.Fprintf(&b, "*nat\n:%s - [0:0]\n", chain)
	keys := make([]gwKey, 0, len(r.gwListeners))
	for k := range r.gwListeners {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].bridge != keys[j].bridge {
			return keys[i].bridge < keys[j].bridge
		}
		return keys[i].addr.String() < keys[j].addr.String()
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "-A %s -i %s -d %s/32 -p tcp --dport %d -j DNAT --to-destination %s\n",
			chain, k.bridge, k.addr.Addr(), k.addr.Port(), r.gwListeners[k].at)
	}
	b.WriteString("COMMIT\n")
	cmd := exec.CommandContext(ctx, "iptables-restore", "-w", "--noflush")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore: %w: %s", err, strings.TrimSpace(string(out)))
	}
	for _, j := range []struct{ table, from string }{{"filter", "FORWARD"}, {"nat", "PREROUTING"}} {
		if iptables(ctx, "-t", j.table, "-C", j.from, "-j", chain) != nil {
			if err := iptables(ctx, "-t", j.table, "-I", j.from, "1", "-j", chain); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeFirewall deletes the chains and every jump to them.
func (r *Runtime) removeFirewall(ctx context.Context) error {
	chain := r.chainName()
	for _, j := range []struct{ table, from string }{{"filter", "FORWARD"}, {"nat", "PREROUTING"}} {
		if iptables(ctx, "-t", j.table, "-n", "-L", chain) != nil {
			continue // no chain
		}
		for iptables(ctx, "-t", j.table, "-D", j.from, "-j", chain) == nil {
		}
		if err := iptables(ctx, "-t", j.table, "-F", chain); err != nil {
			return err
		}
		if err := iptables(ctx, "-t", j.table, "-X", chain); err != nil {
			return err
		}
	}
	return nil
}

func iptables(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
