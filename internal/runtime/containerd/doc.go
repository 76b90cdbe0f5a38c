// Package containerd runs berth's container groups as real containers through
// containerd (runtime.Runtime). It is the product runtime.
//
// One group is one network namespace that berth creates and bind-mounts under
// the data directory (no pause container), attached with CNI to a bridge that
// berth owns (bridge + host-local IPAM + loopback), plus one containerd
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
// Runtime.Listen opens a listener inside a group's namespace (on its
// loopback, say), for proxies that the group's containers reach on
// localhost.
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
//	netns/<group>               bind mount of the group's network namespace
//	groups/<group>/
//	    group.json              what the group runs: containers, policy, address
//	    hosts                   /etc/hosts of the group's containers
//	    logs/<cid>.cri          a container's log (log driver; all runs appended)
//	    logs/<cid>.cri.1        its previous file, after a rotation
//	    logs/<cid>.cri.lock     held (shared) by the running log drivers
//	    logs/<cid>.log          plain log of earlier berths (cio.LogFile), read first
//	fifo/                       exec processes' stdio FIFOs, while they run
package containerd
