package fs_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/blob"
	"github.com/berth-dev/berth/internal/blob/blobtest"
	"github.com/berth-dev/berth/internal/blob/fs"
)

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func newStore(t *testing.T, dir string) *fs.Store {
	t.Helper()
	s, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLayout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := newStore(t, dir)
	w, err := s.Create(ctx, "u1", "")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "layout")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"uploads/u1/data", "uploads/u1/hashstate"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("after Close: %v", err)
		}
	}
	w, _ = s.Resume(ctx, "u1")
	d := digest.FromString("layout")
	if err := w.Commit(ctx, 6, d); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "blobs", "sha256", d.Encoded()[:2], d.Encoded())
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o400 {
		t.Errorf("blob mode = %v, want 0400", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, "uploads", "u1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("upload dir left behind: %v", err)
	}
}

// An upload written by one Store continues in another over the same root, as
// after a restart, using the saved hash state.
func TestResumeAcrossRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	w, err := newStore(t, dir).Create(ctx, "restart", "")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "before restart|")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := newStore(t, dir)
	w, err = s2.Resume(ctx, "restart")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "after")
	if err := w.Commit(ctx, -1, digest.FromString("before restart|after")); err != nil {
		t.Fatal(err)
	}
}

// A hash state that does not describe the data file (a crash between writing
// data and saving state, or a torn state file) is rebuilt from the data.
func TestResumeStaleHashState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, corrupt := range map[string]func(dir string){
		"extra data": func(dir string) {
			f, _ := os.OpenFile(filepath.Join(dir, "data"), os.O_WRONLY|os.O_APPEND, 0)
			f.WriteString("+crash")
			f.Close()
		},
		"torn state": func(dir string) {
			os.WriteFile(filepath.Join(dir, "hashstate"), []byte(`{"algorithm":"sha2`), 0o644)
		},
		"no state": func(dir string) { os.Remove(filepath.Join(dir, "hashstate")) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := newStore(t, dir)
			w, _ := s.Create(ctx, "stale", "")
			io.WriteString(w, "data")
			w.Close()
			corrupt(filepath.Join(dir, "uploads", "stale"))
			w, err := newStore(t, dir).Resume(ctx, "stale")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(filepath.Join(dir, "uploads", "stale", "data"))
			io.WriteString(w, "!")
			want := digest.FromString(string(b) + "!")
			if err := w.Commit(ctx, int64(len(b)+1), want); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Only berth reads the store: directories 0700, upload files 0600, blobs
// 0400, whatever the umask allows.
func TestFileModes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "store")
	s := newStore(t, root)
	w, err := s.Create(ctx, "modes", "")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "modes")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("committed")
	w, _ = s.Create(ctx, "committed", "")
	io.WriteString(w, "committed")
	if err := w.Commit(ctx, -1, d); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		switch {
		case e.IsDir():
			want = 0o700
		case filepath.Base(p) == d.Encoded():
			want = 0o400
		}
		if fi.Mode().Perm() != want {
			rel, _ := filepath.Rel(root, p)
			t.Errorf("%s: mode %v, want %v", rel, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
