package fs

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Close makes the data durable before it saves a hash state describing it,
// once per Close however many writes came before, and not at all when
// nothing was written (an upload's status). Otherwise a crash could leave a
// state that Commit trusts beside data that never reached the disk.
func TestCloseSyncsDataBeforeHashState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(dir, "uploads", "u", "hashstate")
	savedOffset := func() int64 {
		t.Helper()
		b, err := os.ReadFile(statePath)
		if err != nil {
			t.Fatal(err)
		}
		var st hashState
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		return st.Offset
	}
	var syncs []int64 // data size at each sync
	s.syncFile = func(f *os.File) error {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if off := savedOffset(); off >= fi.Size() && fi.Size() > 0 {
			t.Errorf("hash state (offset %d) saved before the data (%d bytes) was synced", off, fi.Size())
		}
		syncs = append(syncs, fi.Size())
		return f.Sync()
	}

	w, err := s.Create(ctx, "u", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []string{"one|", "two|", "three|"} {
		io.WriteString(w, chunk)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(syncs) != 1 || syncs[0] != 14 {
		t.Fatalf("syncs after the first Close: %v, want [14]", syncs)
	}
	if off := savedOffset(); off != 14 {
		t.Fatalf("saved offset %d, want 14", off)
	}

	// A status check: no writes, no sync, state untouched.
	w2, err := s.Resume(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if len(syncs) != 1 {
		t.Fatalf("Close without writes synced: %v", syncs)
	}

	// A failed sync leaves the old state, which no longer matches the data,
	// so the next Resume rehashes.
	w3, _ := s.Resume(ctx, "u")
	io.WriteString(w3, "four")
	s.syncFile = func(*os.File) error { return os.ErrDeadlineExceeded }
	if err := w3.Close(); err == nil {
		t.Fatal("Close succeeded although the sync failed")
	}
	if off := savedOffset(); off != 14 {
		t.Fatalf("state saved at %d after a failed sync", off)
	}
}
