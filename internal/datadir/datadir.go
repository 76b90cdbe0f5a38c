// Package datadir owns the layout of berth's data directory and the
// first-start bootstrap that both `berth serve` and `berth env` run: it
// creates the directory, berth's CA and server certificate, the CA bundle
// for clients, and config.json (the addresses berth serves on, which `berth
// env` reads without touching the database the server holds open).
//
// Layout:
//
//	<dir>/
//	├── config.json        addresses: ARM endpoint, default registry login server
//	├── lock               flock held while bootstrapping
//	├── ca-bundle.pem      system roots + berth CA (SSL_CERT_FILE, REQUESTS_CA_BUNDLE)
//	├── pki/               CA and server certificate (package pki)
//	├── identity/          token signing keys (package identity)
//	├── state.db           the state store (bbolt, package store/bolt)
//	├── registries/<name>/ registry content (package blob/fs)
//	└── runtime/           containerd root/state/socket, netns, CNI, logs (runtime/containerd)
package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/berth-dev/berth/internal/fileutil"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/pki"
)

// DefaultAddr is where berth serves ARM and the token service by default.
const DefaultAddr = "127.0.0.1:7443"

// DefaultRegistryName is the name of the registry every berth starts with.
const DefaultRegistryName = "berth"

// Config is config.json.
type Config struct {
	// Addr is the host:port of the ARM endpoint and token service.
	Addr string `json:"addr"`
	// Registries maps registry name to login server (host:port). Ports are
	// allocated once and stay stable across restarts.
	Registries map[string]string `json:"registries"`
}

// Dir is an opened data directory.
type Dir struct {
	Path   string
	Config Config
	PKI    *pki.PKI
}

// Default returns the default data directory: $BERTH_DATA_DIR, else
// /var/lib/berth for root, else ~/.local/share/berth.
func Default() string {
	if d := os.Getenv("BERTH_DATA_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/berth"
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "berth")
}

// Paths inside the directory.
func (d *Dir) StatePath() string           { return filepath.Join(d.Path, "state.db") }
func (d *Dir) IdentityDir() string         { return filepath.Join(d.Path, "identity") }
func (d *Dir) RuntimeDir() string          { return filepath.Join(d.Path, "runtime") }
func (d *Dir) BundlePath() string          { return filepath.Join(d.Path, "ca-bundle.pem") }
func (d *Dir) RegistryDir(n string) string { return filepath.Join(d.Path, "registries", n) }

// Open bootstraps (if needed) and opens the data directory. addr, when not
// empty, replaces the stored ARM address.
func Open(path, addr string) (*Dir, error) {
	// 0711: other users may reach the CA bundle (for SSL_CERT_FILE) by path,
	// but not list the directory; secrets inside are 0600.
	if err := os.MkdirAll(path, 0o711); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := os.Chmod(path, 0o711); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(path, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	d := &Dir{Path: path}
	cfgPath := filepath.Join(path, "config.json")
	b, err := os.ReadFile(cfgPath)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &d.Config); err != nil {
			return nil, fmt.Errorf("%s: %w", cfgPath, err)
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, err
	}
	changed := false
	if addr != "" && addr != d.Config.Addr {
		d.Config.Addr, changed = addr, true
	}
	if d.Config.Addr == "" {
		d.Config.Addr, changed = DefaultAddr, true
	}
	if d.Config.Registries == nil {
		d.Config.Registries = map[string]string{}
	}
	if _, ok := d.Config.Registries[DefaultRegistryName]; !ok {
		host, port, err := net.SplitHostPort(d.Config.Addr)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", d.Config.Addr, err)
		}
		p, _ := strconv.Atoi(port)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		d.Config.Registries[DefaultRegistryName] = net.JoinHostPort(host, strconv.Itoa(p+1))
		changed = true
	}
	if changed {
		b, _ := json.MarshalIndent(d.Config, "", "  ")
		if err := fileutil.WriteAtomic(cfgPath, append(b, '\n'), 0o600); err != nil {
			return nil, err
		}
	}
	hosts := []string{d.Config.Addr}
	for _, ls := range d.Config.Registries {
		hosts = append(hosts, ls)
	}
	if d.PKI, err = pki.LoadOrCreate(filepath.Join(path, "pki"), hosts, nil); err != nil {
		return nil, err
	}
	if err := d.PKI.WriteBundle(d.BundlePath()); err != nil {
		return nil, err
	}
	return d, nil
}
