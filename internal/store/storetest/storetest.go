// Package storetest is the conformance suite every store.Store implementation
// must pass.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/berth-dev/berth/internal/store"
)

// Suite runs the conformance tests against stores made by newStore. Each
// subtest gets a fresh, empty store.
func Suite(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		err := s.View(ctx, func(tx store.Tx) error {
			_, err := tx.Get("t", "k")
			return err
		})
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get missing: %v, want ErrNotFound", err)
		}
	})
	t.Run("PutGetDelete", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Update(ctx, func(tx store.Tx) error { return tx.Put("t", "k", []byte("v1")) }))
		var got []byte
		must(t, s.View(ctx, func(tx store.Tx) error {
			var err error
			got, err = tx.Get("t", "k")
			return err
		}))
		if string(got) != "v1" {
			t.Fatalf("got %q", got)
		}
		must(t, s.Update(ctx, func(tx store.Tx) error { return tx.Delete("t", "k") }))
		must(t, s.Update(ctx, func(tx store.Tx) error { return tx.Delete("t", "k") }))
		must(t, s.Update(ctx, func(tx store.Tx) error { return tx.Delete("nosuchtable", "k") }))
		err := s.View(ctx, func(tx store.Tx) error { _, err := tx.Get("t", "k"); return err })
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
	})
	t.Run("RollbackOnError", func(t *testing.T) {
		s := newStore(t)
		boom := errors.New("boom")
		err := s.Update(ctx, func(tx store.Tx) error {
			if err := tx.Put("t", "a", []byte("x")); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update error %v", err)
		}
		err = s.View(ctx, func(tx store.Tx) error { _, err := tx.Get("t", "a"); return err })
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("rolled-back write visible: %v", err)
		}
	})
	t.Run("ReadOwnWrites", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Update(ctx, func(tx store.Tx) error {
			if err := tx.Put("t", "a", []byte("1")); err != nil {
				return err
			}
			v, err := tx.Get("t", "a")
			if err != nil || string(v) != "1" {
				return fmt.Errorf("read own write: %q %v", v, err)
			}
			return nil
		}))
	})
	t.Run("ViewIsReadOnly", func(t *testing.T) {
		s := newStore(t)
		err := s.View(ctx, func(tx store.Tx) error { return tx.Put("t", "a", []byte("1")) })
		if err == nil {
			t.Fatal("Put in View succeeded")
		}
	})
	t.Run("ScanPrefixOrdered", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Update(ctx, func(tx store.Tx) error {
			for _, k := range []string{"b/2", "a/1", "b/1", "c", "b/10"} {
				if err := tx.Put("t", k, []byte(k)); err != nil {
					return err
				}
			}
			return tx.Put("other", "b/3", nil)
		}))
		var keys []string
		must(t, s.View(ctx, func(tx store.Tx) error {
			return tx.Scan("t", "b/", func(k string, v []byte) bool {
				if string(v) != k {
					t.Errorf("value of %s = %q", k, v)
				}
				keys = append(keys, k)
				return true
			})
		}))
		if fmt.Sprint(keys) != "[b/1 b/10 b/2]" {
			t.Fatalf("scan = %v", keys)
		}
		var n int
		must(t, s.View(ctx, func(tx store.Tx) error {
			return tx.Scan("t", "", func(string, []byte) bool { n++; return n < 2 })
		}))
		if n != 2 {
			t.Fatalf("scan did not stop: %d", n)
		}
		must(t, s.View(ctx, func(tx store.Tx) error {
			return tx.Scan("missing", "", func(string, []byte) bool { t.Error("visited"); return true })
		}))
	})
	t.Run("ValuesAreCopies", func(t *testing.T) {
		s := newStore(t)
		buf := []byte("abc")
		must(t, s.Update(ctx, func(tx store.Tx) error { return tx.Put("t", "k", buf) }))
		buf[0] = 'X'
		var got []byte
		must(t, s.View(ctx, func(tx store.Tx) error { var err error; got, err = tx.Get("t", "k"); return err }))
		if string(got) != "abc" {
			t.Fatalf("stored value aliased caller buffer: %q", got)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
