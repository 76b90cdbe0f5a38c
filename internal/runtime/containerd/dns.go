package containerd

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/internal/fileutil"
	"github.com/berth-dev/berth/internal/runtime"
)

// Each group has its own resolv.conf, groups/<id>/resolv.conf, bind-mounted
// read-only at /etc/resolv.conf in its containers: the group's DNSSpec when
// it has one, else Config.DefaultDNS for its network.

func (r *Runtime) resolvConfPath(id string) string {
	return filepath.Join(r.groupDir(id), "resolv.conf")
}

// validateDNS checks a group's resolver configuration: nameservers are IP
// addresses, and nothing can add lines to the file.
func validateDNS(d *runtime.DNSSpec) error {
	if d == nil {
		return nil
	}
	for _, ns := range d.Nameservers {
		if net.ParseIP(ns) == nil {
			return fmt.Errorf("dns nameserver %q: want an IP address", ns)
		}
	}
	for _, s := range append(append([]string(nil), d.Search...), d.Options...) {
		if s == "" || strings.ContainsAny(s, " \t\r\n#;\x00") {
			return fmt.Errorf("dns search domain or option %q: want one word", s)
		}
	}
	return nil
}

// groupDNS is the resolver configuration of a group attached as rec says.
func (r *Runtime) groupDNS(spec runtime.GroupSpec, rec *record) runtime.DNSSpec {
	if spec.DNS != nil {
		return *spec.DNS
	}
	if r.cfg.DefaultDNS != nil {
		return r.cfg.DefaultDNS(spec.Network, r.gatewayOfRecord(rec))
	}
	return HostDNS()
}

// gatewayOfRecord is the host's address on the bridge the group is
// attached to (invalid if the runtime does not know it).
func (r *Runtime) gatewayOfRecord(rec *record) netip.Addr {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if rec.Network == "" {
		if s := r.shardFor(rec.Bridge); s != nil {
			return gatewayOf(s.Prefix)
		}
		return netip.Addr{}
	}
	if v, ok := r.nets[rec.Network]; ok {
		return gatewayOf(v.Prefix)
	}
	return netip.Addr{}
}

// writeResolvConf writes the group's resolv.conf. Unchanged contents are not
// rewritten: running containers keep the file they have mounted either way
// (a rewrite replaces the inode).
func (r *Runtime) writeResolvConf(spec runtime.GroupSpec, rec *record) error {
	b := resolvConf(r.groupDNS(spec, rec))
	p := r.resolvConfPath(spec.ID)
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, b) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o711); err != nil {
		return err
	}
	return fileutil.WriteAtomic(p, b, 0o644)
}

// resolvConf renders d in resolv.conf syntax.
func resolvConf(d runtime.DNSSpec) []byte {
	var b bytes.Buffer
	b.WriteString("# written by berth for this container group\n")
	for _, ns := range d.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(d.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(d.Search, " "))
	}
	if len(d.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(d.Options, " "))
	}
	return b.Bytes()
}

// hostResolvConfs are read in turn by HostDNS. A loopback resolver (such as
// systemd-resolved's stub at 127.0.0.53, or dnsmasq on 127.0.0.1) listens in
// the host's network namespace only: inside a group's namespace 127.0.0.53
// is the group's own loopback, where nothing answers. So loopback
// nameservers are dropped, and when nothing else is left the upstream
// servers systemd-resolved itself uses are taken instead.
var hostResolvConfs = []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"}

// HostDNS returns the host's resolver configuration as a group can use it:
// its nameservers except loopback ones (see above), its search domains and
// options. With only loopback resolvers and no systemd-resolved upstream
// list, the result has no nameservers: names then resolve only through
// berth's own DNS server, when Config.DefaultDNS names it.
func HostDNS() runtime.DNSSpec {
	var first runtime.DNSSpec
	for i, p := range hostResolvConfs {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		d := parseResolvConf(f)
		f.Close()
		if i == 0 {
			first = d
		}
		if len(d.Nameservers) > 0 {
			if i > 0 { // upstream servers; the search path is the host's
				d.Search, d.Options = first.Search, first.Options
			}
			return d
		}
	}
	return first
}

// parseResolvConf reads nameserver, search/domain and options lines,
// dropping loopback nameservers.
func parseResolvConf(f *os.File) runtime.DNSSpec {
	var d runtime.DNSSpec
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			ip := net.ParseIP(fields[1])
			if ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
				d.Nameservers = append(d.Nameservers, fields[1])
			}
		case "search", "domain": // the last one wins, as in glibc
			d.Search = append([]string(nil), fields[1:]...)
		case "options":
			d.Options = append(d.Options, fields[1:]...)
		}
	}
	return d
}
