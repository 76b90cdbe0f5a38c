// Package store defines berth's state store: a transactional key-value store of
// documents grouped in named tables. Everything berth must remember across a
// restart (resource groups, container groups, registries, operations) lives here,
// never only in memory.
//
// The interface is deliberately small so that it maps onto an embedded database
// (bbolt, see store/bolt) today and onto PostgreSQL later (one table with
// columns table, key, value). Implementations must pass storetest.Suite.
package store

import (
	"context"
	"errors"
)

// ErrNotFound is returned by Tx.Get when the key does not exist. It wraps the
// errdefs not-found class so callers may test either.
var ErrNotFound = errors.New("store: not found")

// Store is a transactional key-value store.
type Store interface {
	// View runs fn in a read-only transaction. Writes inside fn fail.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction. If fn returns an error the
	// transaction is rolled back and nothing it wrote is visible; otherwise it is
	// committed durably (synced) before Update returns.
	Update(ctx context.Context, fn func(Tx) error) error
	// Close releases the store. Further calls fail.
	Close() error
}

// Tx is one transaction. Values returned by Get and Scan are copies that the
// caller owns; they stay valid after the transaction ends.
type Tx interface {
	// Get returns the value stored under key in table, or ErrNotFound.
	Get(table, key string) ([]byte, error)
	// Put stores value under key in table, creating the table if needed.
	Put(table, key string, value []byte) error
	// Delete removes key from table. Deleting a missing key is not an error.
	Delete(table, key string) error
	// Scan calls fn for every key in table that starts with prefix, in
	// ascending byte order of keys, until fn returns false. A missing table
	// scans as empty.
	Scan(table, prefix string, fn func(key string, value []byte) bool) error
}
