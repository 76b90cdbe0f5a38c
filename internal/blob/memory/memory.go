// Package memory is an in-memory blob.Store for unit tests. It keeps every blob
// and upload in maps and loses them when the process exits; the product uses
// blob/fs.
package memory

import (
	"bytes"
	"context"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/blob"
)

// Store is an in-memory blob.Store. The zero value is not usable; call New.
type Store struct {
	mu      sync.Mutex
	blobs   map[digest.Digest][]byte
	uploads map[string]*upload
}

type upload struct {
	alg  digest.Algorithm
	data []byte
	hash hash.Hash
	busy bool
}

var _ blob.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{blobs: map[digest.Digest][]byte{}, uploads: map[string]*upload{}}
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, dgst digest.Digest) (int64, error) {
	b, err := s.get(ctx, dgst)
	if err != nil {
		return 0, err
	}
	return int64(len(b)), nil
}

// Open implements blob.Store.
func (s *Store) Open(ctx context.Context, dgst digest.Digest) (io.ReadSeekCloser, error) {
	b, err := s.get(ctx, dgst)
	if err != nil {
		return nil, err
	}
	return nopCloser{bytes.NewReader(b)}, nil
}

func (s *Store) get(ctx context.Context, dgst digest.Digest) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := blob.ValidateDigest(dgst); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[dgst]
	if !ok {
		return nil, fmt.Errorf("%w: blob %s", blob.ErrNotFound, dgst)
	}
	return b, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	if _, err := s.get(ctx, dgst); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.blobs, dgst)
	return nil
}

// Walk implements blob.Store.
func (s *Store) Walk(ctx context.Context, fn func(digest.Digest, int64) error) error {
	s.mu.Lock()
	sizes := make(map[digest.Digest]int64, len(s.blobs))
	for d, b := range s.blobs {
		sizes[d] = int64(len(b))
	}
	s.mu.Unlock()
	for d, n := range sizes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(d, n); err != nil {
			return err
		}
	}
	return nil
}

// Uploads implements blob.Store.
func (s *Store) Uploads(ctx context.Context, fn func(string, int64) error) error {
	s.mu.Lock()
	sizes := make(map[string]int64, len(s.uploads))
	for id, u := range s.uploads {
		sizes[id] = int64(len(u.data))
	}
	s.mu.Unlock()
	for id, n := range sizes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(id, n); err != nil {
			return err
		}
	}
	return nil
}

// Create implements blob.Store.
func (s *Store) Create(ctx context.Context, id string, alg digest.Algorithm) (blob.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := blob.ValidUploadID(id); err != nil {
		return nil, err
	}
	if alg == "" {
		alg = digest.Canonical
	}
	if err := blob.ValidateAlgorithm(alg); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.uploads[id]; ok {
		return nil, fmt.Errorf("%w: upload %s", blob.ErrAlreadyExists, id)
	}
	u := &upload{alg: alg, hash: alg.Hash(), busy: true}
	s.uploads[id] = u
	return &writer{s: s, id: id, u: u}, nil
}

// Resume implements blob.Store.
func (s *Store) Resume(ctx context.Context, id string) (blob.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := blob.ValidUploadID(id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.uploads[id]
	if !ok {
		return nil, fmt.Errorf("%w: upload %s", blob.ErrNotFound, id)
	}
	if u.busy {
		return nil, fmt.Errorf("%w: upload %s", blob.ErrBusy, id)
	}
	u.busy = true
	return &writer{s: s, id: id, u: u}, nil
}

type writer struct {
	s    *Store
	id   string
	u    *upload
	done bool
}

func (w *writer) ID() string { return w.id }

func (w *writer) Size() int64 { return int64(len(w.u.data)) }

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, blob.ErrClosed
	}
	w.s.mu.Lock() // Uploads reads the size
	w.u.data = append(w.u.data, p...)
	w.s.mu.Unlock()
	w.u.hash.Write(p)
	return len(p), nil
}

func (w *writer) Close() error {
	if w.done {
		return blob.ErrClosed
	}
	w.release(false)
	return nil
}

func (w *writer) Cancel(ctx context.Context) error {
	if w.done {
		return blob.ErrClosed
	}
	w.release(true)
	return nil
}

func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest) error {
	if w.done {
		return blob.ErrClosed
	}
	if err := blob.ValidateDigest(expected); err != nil {
		return err
	}
	if size >= 0 && size != w.Size() {
		return fmt.Errorf("%w: upload %s has %d bytes, expected %d", blob.ErrSizeMismatch, w.id, w.Size(), size)
	}
	var got digest.Digest
	if expected.Algorithm() == w.u.alg {
		got = digest.NewDigest(w.u.alg, w.u.hash)
	} else {
		got = expected.Algorithm().FromBytes(w.u.data)
	}
	if got != expected {
		return fmt.Errorf("%w: upload %s is %s, expected %s", blob.ErrDigestMismatch, w.id, got, expected)
	}
	if err := ctx.Err(); err != nil {
		w.release(false)
		return err
	}
	w.s.mu.Lock()
	if _, ok := w.s.blobs[expected]; !ok {
		w.s.blobs[expected] = w.u.data
	}
	w.s.mu.Unlock()
	w.release(true)
	return nil
}

func (w *writer) release(remove bool) {
	w.done = true
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.u.busy = false
	if remove {
		delete(w.s.uploads, w.id)
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
