package datadir

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenBootstrapsAndIsStable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	d, err := Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if d.Config.Addr != DefaultAddr || d.Config.Registries[DefaultRegistryName] != "127.0.0.1:7444" {
		t.Fatalf("config %+v", d.Config)
	}
	bundle, err := os.ReadFile(d.BundlePath())
	if err != nil || !bytes.Contains(bundle, d.PKI.CAPEM()) {
		t.Fatalf("bundle lacks the CA: %v", err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o711 {
		t.Fatalf("data dir mode %v", st.Mode().Perm())
	}
	// A new address keeps the registry's login server (stable across restarts).
	d2, err := Open(dir, "127.0.0.1:9000")
	if err != nil {
		t.Fatal(err)
	}
	if d2.Config.Addr != "127.0.0.1:9000" || d2.Config.Registries[DefaultRegistryName] != "127.0.0.1:7444" {
		t.Fatalf("reopened config %+v", d2.Config)
	}
	if !bytes.Equal(d2.PKI.CAPEM(), d.PKI.CAPEM()) {
		t.Fatal("CA changed on reopen")
	}
	d3, err := Open(dir, "")
	if err != nil || d3.Config.Addr != "127.0.0.1:9000" {
		t.Fatalf("address not kept: %+v %v", d3.Config, err)
	}
}
