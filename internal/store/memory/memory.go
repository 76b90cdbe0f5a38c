// Package memory is an in-memory store.Store for unit tests. It is never used
// by the product: berth's state must survive a restart.
package memory

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"

	"github.com/berth-dev/berth/internal/store"
)

// Store keeps tables in maps. Transactions are serialised by a lock; an
// Update works on a copy of the touched tables and publishes it on success.
type Store struct {
	mu     sync.RWMutex
	tables map[string]map[string][]byte
	closed bool
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store { return &Store{tables: map[string]map[string][]byte{}} }

var errClosed = errors.New("memory store: closed")
var errReadOnly = errors.New("memory store: write in read-only transaction")

// View implements store.Store.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	return fn(&tx{base: s.tables, readOnly: true})
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	t := &tx{base: s.tables, dirty: map[string]map[string][]byte{}}
	if err := fn(t); err != nil {
		return err
	}
	for name, tbl := range t.dirty {
		s.tables[name] = tbl
	}
	return nil
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

type tx struct {
	base     map[string]map[string][]byte
	dirty    map[string]map[string][]byte
	readOnly bool
}

func (t *tx) table(name string) map[string][]byte {
	if d, ok := t.dirty[name]; ok {
		return d
	}
	return t.base[name]
}

func (t *tx) writable(name string) (map[string][]byte, error) {
	if t.readOnly {
		return nil, errReadOnly
	}
	if d, ok := t.dirty[name]; ok {
		return d, nil
	}
	d := make(map[string][]byte, len(t.base[name]))
	for k, v := range t.base[name] {
		d[k] = v
	}
	t.dirty[name] = d
	return d, nil
}

func (t *tx) Get(table, key string) ([]byte, error) {
	v, ok := t.table(table)[key]
	if !ok {
		return nil, store.ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

func (t *tx) Put(table, key string, value []byte) error {
	d, err := t.writable(table)
	if err != nil {
		return err
	}
	d[key] = append([]byte(nil), value...)
	return nil
}

func (t *tx) Delete(table, key string) error {
	d, err := t.writable(table)
	if err != nil {
		return err
	}
	delete(d, key)
	return nil
}

func (t *tx) Scan(table, prefix string, fn func(string, []byte) bool) error {
	tbl := t.table(table)
	keys := make([]string, 0, len(tbl))
	for k := range tbl {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !fn(k, append([]byte(nil), tbl[k]...)) {
			return nil
		}
	}
	return nil
}
