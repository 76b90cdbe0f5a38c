package containerd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// network attaches groups' namespaces to berth's bridge with CNI: the bridge
// plugin (the host is the gateway, so it reaches every group address;
// no masquerading: traffic is between the host and the groups) with
// host-local addresses from the subnet. lo is brought up when the namespace
// is made (createNetNS), not by CNI's loopback plugin: a plugin is a process
// per group on every attach and detach.
type network struct {
	cni    *libcni.CNIConfig
	list   *libcni.NetworkConfigList
	bridge string
	prefix netip.Prefix
}

// newNetworkShard is the network of one shard of the default network
// (shards.go): addresses from slice, and a route to the whole default
// subnet through the gateway so that groups reach the other shards.
func newNetworkShard(pluginDir, dataDir, bridge string, slice, subnet netip.Prefix) (*network, error) {
	return newNetworkRange(pluginDir, dataDir, bridge, slice, netip.Addr{}, subnet)
}

// gatewayOf is the bridge's (the host's) address in prefix: the first
// address after the network address, as host-local would choose.
func gatewayOf(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// newNetworkRange is newNetwork with the prefix parsed; rangeStart, when
// valid, is the first address handed to groups (Azure keeps the first four
// addresses of a subnet for itself, so virtual-network subnets start at
// .4). route, when valid and wider than subnet, is routed through the
// gateway.
func newNetworkRange(pluginDir, dataDir, bridge string, subnet netip.Prefix, rangeStart netip.Addr, route netip.Prefix) (*network, error) {
	if len(bridge) == 0 || len(bridge) > 15 {
		return nil, fmt.Errorf("bridge name %q: want 1 to 15 characters", bridge)
	}
	for _, p := range []string{"bridge", "host-local"} {
		if _, err := os.Stat(filepath.Join(pluginDir, p)); err != nil {
			return nil, fmt.Errorf("CNI plugin %s: %w (install containernetworking-plugins)", p, err)
		}
	}
	type m = map[string]any
	rng := m{"subnet": subnet.String(), "gateway": gatewayOf(subnet).String()}
	if rangeStart.IsValid() {
		rng["rangeStart"] = rangeStart.String()
	}
	ipam := m{
		"type":    "host-local",
		"ranges":  [][]m{{rng}},
		"dataDir": filepath.Join(dataDir, "networks"),
	}
	if route.IsValid() && route.Bits() < subnet.Bits() {
		ipam["routes"] = []m{{"dst": route.String()}}
	}
	conf := m{
		"cniVersion": "1.0.0",
		"name":       bridge,
		"plugins": []m{
			{
				"type":      "bridge",
				"bridge":    bridge,
				"isGateway": true,
				// Virtual-network groups route through the host (their
				// gateway) to the other subnets of their network, as on
				// Azure; the default network's groups talk to the host only.
				"isDefaultGateway": rangeStart.IsValid(),
				"ipMasq":           false,
				"hairpinMode":      true,
				"ipam":             ipam,
			},
		},
	}
	b, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("CNI configuration: %w", err)
	}
	// The exec is given, not left to libcni to make on first use: that
	// lazy assignment races when two groups are attached at once.
	runner := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}}
	cni := libcni.NewCNIConfigWithCacheDir([]string{pluginDir}, filepath.Join(dataDir, "cache"), runner)
	return &network{cni: cni, list: list, bridge: bridge, prefix: subnet}, nil
}

func (n *network) runtimeConf(id, netns string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "eth0"}
}

// add attaches the namespace at netns and returns the group's address.
func (n *network) add(ctx context.Context, id, netns string) (string, error) {
	res, err := n.cni.AddNetworkList(ctx, n.list, n.runtimeConf(id, netns))
	if err != nil {
		return "", fmt.Errorf("CNI add: %w", err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return "", fmt.Errorf("CNI result: %w", err)
	}
	for _, ip := range r.IPs {
		if ip.Address.IP.To4() != nil {
			return ip.Address.IP.String(), nil
		}
	}
	if len(r.IPs) > 0 {
		return r.IPs[0].Address.IP.String(), nil
	}
	return "", fmt.Errorf("CNI add: no address in result")
}

// del detaches group id and releases its address. netns may be "" when the
// namespace is gone (after a reboot); the address is released anyway.
func (n *network) del(ctx context.Context, id, netns string) error {
	if err := n.cni.DelNetworkList(ctx, n.list, n.runtimeConf(id, netns)); err != nil {
		return fmt.Errorf("CNI del: %w", err)
	}
	return nil
}
