// Package hostnet removes what a test's or a benchmark's berth leaves on the
// host's network once its groups are gone.
package hostnet

import "os/exec"

// RemoveBridge deletes a berth's bridge and the iptables chains berth keeps
// for it (BERTH-<bridge> in the filter and nat tables, jumped to from FORWARD
// and PREROUTING). The chains outlive berth by design, guarding the groups it
// leaves running, so they go with the bridge after those groups. Errors are
// ignored: what is not there is fine.
func RemoveBridge(bridge string) {
	_ = exec.Command("ip", "link", "del", bridge).Run()
	chain := "BERTH-" + bridge
	for table, from := range map[string]string{"filter": "FORWARD", "nat": "PREROUTING"} {
		for exec.Command("iptables", "-w", "-t", table, "-D", from, "-j", chain).Run() == nil {
		}
		_ = exec.Command("iptables", "-w", "-t", table, "-F", chain).Run()
		_ = exec.Command("iptables", "-w", "-t", table, "-X", chain).Run()
	}
}
