package fileutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteAtomic(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteAtomic(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("content %q", b)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	if err := WriteExclusive(p, []byte("three"), 0o600); !errors.Is(err, ErrExist) {
		t.Fatalf("exclusive over an existing file: %v", err)
	}
	if err := WriteExclusive(filepath.Join(dir, "g"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestRSAKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k", "key.pem")
	k1, err := LoadOrCreateRSAKey(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateRSAKey(path)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("key not stable: %v", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", st.Mode().Perm())
	}
	os.WriteFile(path, []byte("garbage"), 0o600)
	if _, err := LoadOrCreateRSAKey(path); err == nil {
		t.Fatal("garbage key accepted")
	}
}
