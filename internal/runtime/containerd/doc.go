// Package containerd runs berth's container groups as real containers through
// containerd (runtime.Runtime). It is the product runtime.
//
// One group is one network namespace that berth creates and bind-mounts under
// the data directory (no pause container), attached with CNI to a bridge that
// berth owns (CNI's bridge + host-local IPAM; berth brings lo up itself), plus one containerd
// container per group container that joins that namespace, so a group's
// containers share localhost and the host reaches them on the group's
// address. Images are pulled client-side with containerd's docker resolver
// (Docker token flow, the group's credentials matched by registry host) and
// unpacked into the overlayfs snapshotter (native where overlayfs is
// unusable). Each container's stdout and stderr go to berth's own log
// driver (package logdriver), which the shim runs: lines stamped with their
// time, rotated, written while berth is down. Exec runs processes in a
// container with its process settings; probes (probe.go) run like a
// kubelet's.
//
// Restart policies are applied here, like a kubelet: a goroutine per
// container waits for its task to exit, records the exit, and restarts it as
// the policy says with an exponential back-off (1 s doubling to 5 min, reset
// after 10 min of running). Everything Status reports is read live from
// containerd: task state and exit status from the task service, start times,
// restart counts and previous states from labels on the containerd container
// (written as they change), so a restarted berth reports the same thing and
// RecoverGroup carries on where the last process stopped.
//
// The default network is sharded: one Linux bridge holds at most 1,023
// ports, so it has as many bridges as its groups need, 1,000 groups each,
// each with its own slice of Config.Subnet (a /22 by default) and gateway:
// Config.BridgeName first, then <NetworkPrefix>-1, -2, … created on demand
// (Config.OnBridge tells berth's DNS server, which listens on every
// gateway; a group's resolv.conf names its own bridge's gateway). Every
// default-network group has a route to the whole subnet through its gateway
// and the firewall accepts traffic between the shards, so they are one
// public network; a group's record names its bridge (none: the first, where
// groups from before sharding are). Shards are recorded under shards/ and
// re-created by New. See shards.go.
//
// Besides the default network, EnsureNetwork adds networks for
// virtual-network subnets: each its own bridge (named from a 4-character
// prefix and tags of its domain and name) with the subnet's prefix, groups
// addressed from its fourth address on with a default route through the
// host. An iptables chain of the runtime's own, jumped to first from
// FORWARD, lets the bridges of one domain (one virtual network) route to
// each other and drops every other pair among berth's bridges, the default
// one included; the host reaches every group. Networks are recorded under
// vnets/ and re-created by New; the chain exists only while networks (or
// redirects) do.
// The default bridge is created by New with its gateway address, so that
// services (berth's DNS server) can listen there before the first group.
//
// Runtime.Listen opens a listener inside a group's namespace (on its
// loopback, say), for proxies that the group's containers reach on
// localhost (Forward). A Redirect serves an address outside the groups
// (berth's metadata endpoint at 169.254.169.254:80) without taking a port
// inside them: a route in each group, a DNAT rule per bridge in the
// runtime's nat chain, and a listener on each bridge's gateway that tells
// the group by its source address (redirect.go).
//
// What a group's containers get besides (see the files named):
//   - volumes (volumes.go): emptyDir and gitRepo volumes are directories of
//     the group (a gitRepo is cloned with the git program, file, http(s) and
//     git URLs only, before any container starts), a secret volume is a
//     tmpfs of its own (files 0400, directory 0500, owned by the user of
//     the first container mounting it that sets one), a share is a directory
//     under shares/ kept across groups; all bind-mounted, ordered parents
//     first.
//   - init containers (init.go) run one after another to completion before
//     the containers; RestartGroup (restart.go) runs them again.
//   - the security context (security.go): user and group, capabilities,
//     no_new_privs, privileged, seccomp (containerd's default profile unless
//     privileged or given one).
//   - a cgroup namespace and a read-only /sys/fs/cgroup showing their own
//     limits; OOM kills are read from the memory cgroup's counters when an
//     exit is handled (cgroups.go).
//   - /etc/resolv.conf from the group's DNS settings or Config.DefaultDNS
//     (dns.go).
//   - GPUs through CDI when the host has NVIDIA GPUs and a CDI
//     specification; otherwise a Warning event, or a refusal (gpu.go).
//     Every container asking for n GPUs gets devices 0..n-1: GPUs are not
//     allotted exclusively between groups.
//
// Unless Config.Socket names a containerd to use, New starts a private
// containerd (its own root, state and sockets under the data directory, CRI
// plugin disabled) or adopts the one a previous berth left running there.
// Close stops that daemon (SIGTERM, then SIGKILL after 10 s); containers keep
// running under their shims, and the next daemon started on the same data
// directory reconnects to them.
//
// On-disk layout, under Config.DataDir:
//
//	containerd/
//	    config.toml             private daemon's configuration (written when New starts it)
//	    containerd.sock         gRPC socket (and containerd.sock.ttrpc)
//	    containerd.pid          private daemon's pid
//	    containerd.log          private daemon's output
//	    root/                   containerd root: content, snapshots, metadata
//	    state/                  containerd state: task bundles
//	    runc/                   runc's state directory
//	    opt/                    containerd's opt plugin directory (unused)
//	cni/
//	    cache/                  libcni cache: the ADD result per group
//	    networks/<bridge>/      host-local reservations: one file per address
//	vnets/<bridge>.json         a network added with EnsureNetwork (name, domain, prefix)
//	shards/<bridge>.json        a further bridge of the default network (index, bridge, prefix)
//	netns/<group>               bind mount of the group's network namespace
//	groups/<group>/
//	    group.json              what the group runs: containers, policy, address
//	    hosts                   /etc/hosts of the group's containers
//	    resolv.conf             /etc/resolv.conf of the group's containers
//	    logs/<group>.<name>.log stdout+stderr of one container, all runs appended
//	    volumes/<volume>/       an emptyDir or gitRepo volume
//	    secrets/<volume>/       mount point of a secret volume's tmpfs
//	shares/<account>/<share>/   a persistent share (names escaped, lower case)
//	    logs/<cid>.cri          a container's log (log driver; all runs appended)
//	    logs/<cid>.cri.1        its previous file, after a rotation
//	    logs/<cid>.cri.lock     held (shared) by the running log drivers
//	    logs/<cid>.log          plain log of earlier berths (cio.LogFile), read first
//	fifo/                       exec processes' stdio FIFOs, while they run
package containerd
