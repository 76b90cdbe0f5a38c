// Package bolt is the product's store.Store: an embedded bbolt database in one
// file under the data directory. Each store table is a top-level bucket.
// Every Update is committed with fsync before it returns, so an acknowledged
// write survives a crash; bbolt's copy-on-write pages mean a crash mid-write
// leaves the previous committed state intact.
package bolt

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/internal/store"
)

// Store is a bbolt-backed store.Store.
type Store struct{ db *bbolt.DB }

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path. Only one process
// may hold it open; a second Open waits up to 5 s and then fails.
func Open(path string) (*Store, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// View implements store.Store.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	return s.db.View(func(btx *bbolt.Tx) error { return fn(tx{btx}) })
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.db.Update(func(btx *bbolt.Tx) error { return fn(tx{btx}) })
}

// Close implements store.Store.
func (s *Store) Close() error { return s.db.Close() }

type tx struct{ b *bbolt.Tx }

func (t tx) Get(table, key string) ([]byte, error) {
	bk := t.b.Bucket([]byte(table))
	if bk == nil {
		return nil, store.ErrNotFound
	}
	v := bk.Get([]byte(key))
	if v == nil {
		return nil, store.ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (t tx) Put(table, key string, value []byte) error {
	bk, err := t.b.CreateBucketIfNotExists([]byte(table))
	if err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	return bk.Put([]byte(key), value)
}

func (t tx) Delete(table, key string) error {
	bk := t.b.Bucket([]byte(table))
	if bk == nil {
		if !t.b.Writable() {
			return bbolt.ErrTxNotWritable
		}
		return nil
	}
	return bk.Delete([]byte(key))
}

func (t tx) Scan(table, prefix string, fn func(string, []byte) bool) error {
	bk := t.b.Bucket([]byte(table))
	if bk == nil {
		return nil
	}
	c := bk.Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if !fn(string(k), bytes.Clone(v)) {
			return nil
		}
	}
	return nil
}
