// Package fs is the blob.Store berth runs with: plain files under one root
// directory per registry.
//
// Layout under the root:
//
//	<root>/
//	├── blobs/
//	│   ├── sha256/
//	│   │   └── 3f/
//	│   │       └── 3f2a…c9        committed blob, named by its full hex digest, mode 0400
//	│   └── sha512/
//	│       └── …                  same shape
//	└── uploads/
//	    └── <upload id>/
//	        ├── data               bytes received so far, appended in order
//	        └── hashstate          JSON {algorithm, offset, state}: the marshalled
//	                               running hash after offset bytes of data
//
// A blob appears only by rename(2) of a verified, fsynced uploads/<id>/data into
// blobs/, followed by an fsync of the target directory, so a reader (or a restart)
// never sees a partial blob. hashstate is rewritten (write to a temporary file,
// then rename) whenever a Writer that wrote closes, after data is fsynced (once per
// Close, not per Write), so a saved state never describes bytes a crash could
// lose; if it is missing, unreadable or does not describe the whole data file (a
// crash after a Write, before Close), Resume re-reads data to rebuild the hash.
// Only one process may use a root at a time.
//
// Only berth reads the files: directories are 0700, upload files 0600, blobs
// 0400.
package fs

import (
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/blob"
)

// File modes: only berth reads the store.
const (
	dirMode  = 0o700
	fileMode = 0o600
	blobMode = 0o400
)

// Store keeps blobs as files under a root directory.
type Store struct {
	root string
	// syncFile fsyncs an upload's data file; tests replace it to observe
	// when data is made durable.
	syncFile func(*os.File) error

	mu   sync.Mutex
	busy map[string]bool // upload ids held by a Writer
}

var _ blob.Store = (*Store)(nil)

// New opens (creating if needed) a store rooted at dir.
func New(dir string) (*Store, error) {
	s := &Store{root: dir, busy: map[string]bool{}, syncFile: (*os.File).Sync}
	for _, d := range []string{s.root, filepath.Join(s.root, "blobs"), s.uploadsDir()} {
		if err := os.MkdirAll(d, dirMode); err != nil {
			return nil, fmt.Errorf("blob/fs: %w", err)
		}
	}
	return s, nil
}

func (s *Store) uploadsDir() string { return filepath.Join(s.root, "uploads") }

func (s *Store) uploadDir(id string) string { return filepath.Join(s.root, "uploads", id) }

// blobPath returns the file of a validated digest.
func (s *Store) blobPath(d digest.Digest) string {
	enc := d.Encoded()
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), enc[:2], enc)
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, dgst digest.Digest) (int64, error) {
	if err := blob.ValidateDigest(dgst); err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.blobPath(dgst))
	if err != nil {
		return 0, notFound(err, "blob %s", dgst)
	}
	return fi.Size(), nil
}

// Open implements blob.Store.
func (s *Store) Open(ctx context.Context, dgst digest.Digest) (io.ReadSeekCloser, error) {
	if err := blob.ValidateDigest(dgst); err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(dgst))
	if err != nil {
		return nil, notFound(err, "blob %s", dgst)
	}
	return f, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	if err := blob.ValidateDigest(dgst); err != nil {
		return err
	}
	p := s.blobPath(dgst)
	if err := os.Remove(p); err != nil {
		return notFound(err, "blob %s", dgst)
	}
	return syncDir(filepath.Dir(p))
}

// Walk implements blob.Store. Entries that are not blobs (stray files) are
// skipped.
func (s *Store) Walk(ctx context.Context, fn func(digest.Digest, int64) error) error {
	for _, alg := range blob.Algorithms {
		algDir := filepath.Join(s.root, "blobs", alg.String())
		prefixes, err := os.ReadDir(algDir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("blob/fs: %w", err)
		}
		for _, p := range prefixes {
			entries, err := os.ReadDir(filepath.Join(algDir, p.Name()))
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return fmt.Errorf("blob/fs: %w", err)
			}
			for _, e := range entries {
				if err := ctx.Err(); err != nil {
					return err
				}
				d := digest.NewDigestFromEncoded(alg, e.Name())
				if d.Validate() != nil || !e.Type().IsRegular() {
					continue
				}
				fi, err := e.Info()
				if err != nil {
					continue // deleted meanwhile
				}
				if err := fn(d, fi.Size()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Uploads implements blob.Store.
func (s *Store) Uploads(ctx context.Context, fn func(string, int64) error) error {
	entries, err := os.ReadDir(s.uploadsDir())
	if err != nil {
		return fmt.Errorf("blob/fs: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if blob.ValidUploadID(e.Name()) != nil || !e.IsDir() {
			continue
		}
		fi, err := os.Stat(filepath.Join(s.uploadDir(e.Name()), "data"))
		if err != nil {
			continue // committed or cancelled meanwhile
		}
		if err := fn(e.Name(), fi.Size()); err != nil {
			return err
		}
	}
	return nil
}

// hashState is the content of uploads/<id>/hashstate.
type hashState struct {
	Algorithm digest.Algorithm `json:"algorithm"`
	Offset    int64            `json:"offset"`
	State     []byte           `json:"state,omitempty"` // encoding.BinaryMarshaler output
}

// Create implements blob.Store.
func (s *Store) Create(ctx context.Context, id string, alg digest.Algorithm) (blob.Writer, error) {
	if err := blob.ValidUploadID(id); err != nil {
		return nil, err
	}
	if alg == "" {
		alg = digest.Canonical
	}
	if err := blob.ValidateAlgorithm(alg); err != nil {
		return nil, err
	}
	if err := s.acquire(id); err != nil {
		if errors.Is(err, blob.ErrBusy) {
			err = fmt.Errorf("%w: upload %s", blob.ErrAlreadyExists, id)
		}
		return nil, err
	}
	w, err := s.create(id, alg)
	if err != nil {
		s.releaseID(id)
		return nil, err
	}
	return w, nil
}

func (s *Store) create(id string, alg digest.Algorithm) (*writer, error) {
	dir := s.uploadDir(id)
	if err := os.Mkdir(dir, dirMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w: upload %s", blob.ErrAlreadyExists, id)
		}
		return nil, fmt.Errorf("blob/fs: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, fileMode)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("blob/fs: %w", err)
	}
	w := &writer{s: s, id: id, f: f, alg: alg, hash: alg.Hash()}
	// Record the algorithm now, so that a crash before Close still resumes
	// with the right hash.
	if err := w.saveState(); err != nil {
		f.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	return w, nil
}

// Resume implements blob.Store.
func (s *Store) Resume(ctx context.Context, id string) (blob.Writer, error) {
	if err := blob.ValidUploadID(id); err != nil {
		return nil, err
	}
	if err := s.acquire(id); err != nil {
		return nil, err
	}
	w, err := s.resume(id)
	if err != nil {
		s.releaseID(id)
		return nil, err
	}
	return w, nil
}

func (s *Store) resume(id string) (*writer, error) {
	dir := s.uploadDir(id)
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, notFound(err, "upload %s", id)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob/fs: %w", err)
	}
	w := &writer{s: s, id: id, f: f, size: fi.Size()}
	if err := w.restoreHash(); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

// restoreHash sets w.alg and w.hash from the saved state, re-reading the data
// file when the state does not cover exactly w.size bytes.
func (w *writer) restoreHash() error {
	var st hashState
	if b, err := os.ReadFile(w.path("hashstate")); err == nil {
		_ = json.Unmarshal(b, &st) // a torn file leaves st partly empty: handled below
	}
	w.alg = st.Algorithm
	if blob.ValidateAlgorithm(w.alg) != nil {
		w.alg = digest.Canonical
	}
	w.hash = w.alg.Hash()
	if st.Algorithm == w.alg && st.Offset == w.size {
		if u, ok := w.hash.(encoding.BinaryUnmarshaler); ok && u.UnmarshalBinary(st.State) == nil {
			return nil
		}
		w.hash.Reset()
	}
	// The bytes beyond the saved state may not be on disk yet (the process
	// died, not the machine): the next Close syncs them before saving.
	w.dirty = true
	return w.rehash(w.hash)
}

// rehash feeds the whole data file to h.
func (w *writer) rehash(h hash.Hash) error {
	f, err := os.Open(w.path("data"))
	if err != nil {
		return fmt.Errorf("blob/fs: %w", err)
	}
	defer f.Close()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("blob/fs: rehash upload %s: %w", w.id, err)
	}
	if n != w.size {
		return fmt.Errorf("blob/fs: upload %s changed while rehashing", w.id)
	}
	return nil
}

func (s *Store) acquire(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[id] {
		return fmt.Errorf("%w: upload %s", blob.ErrBusy, id)
	}
	s.busy[id] = true
	return nil
}

func (s *Store) releaseID(id string) {
	s.mu.Lock()
	delete(s.busy, id)
	s.mu.Unlock()
}

type writer struct {
	s    *Store
	id   string
	f    *os.File
	alg  digest.Algorithm
	hash hash.Hash
	size int64
	done bool
	// dirty: data holds bytes the saved hash state does not describe.
	dirty bool
}

func (w *writer) path(name string) string { return filepath.Join(w.s.uploadDir(w.id), name) }

func (w *writer) ID() string { return w.id }

func (w *writer) Size() int64 { return w.size }

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, blob.ErrClosed
	}
	n, err := w.f.Write(p)
	w.hash.Write(p[:n])
	w.size += int64(n)
	if n > 0 {
		w.dirty = true
	}
	return n, err
}

// saveState writes hashstate atomically (temporary file, then rename).
func (w *writer) saveState() error {
	st := hashState{Algorithm: w.alg, Offset: w.size}
	if m, ok := w.hash.(encoding.BinaryMarshaler); ok {
		b, err := m.MarshalBinary()
		if err != nil {
			return fmt.Errorf("blob/fs: save hash state: %w", err)
		}
		st.State = b
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("blob/fs: save hash state: %w", err)
	}
	tmp := w.path("hashstate.tmp")
	if err := os.WriteFile(tmp, b, fileMode); err != nil {
		return fmt.Errorf("blob/fs: save hash state: %w", err)
	}
	if err := os.Rename(tmp, w.path("hashstate")); err != nil {
		return fmt.Errorf("blob/fs: save hash state: %w", err)
	}
	return nil
}

func (w *writer) Close() error {
	if w.done {
		return blob.ErrClosed
	}
	w.done = true
	defer w.s.releaseID(w.id)
	var err error
	if w.dirty {
		// Data first: a saved state must never describe bytes a crash can
		// lose, or Commit would trust a hash of data that is not there.
		if err = w.s.syncFile(w.f); err != nil {
			err = fmt.Errorf("blob/fs: sync upload %s: %w", w.id, err)
		} else {
			err = w.saveState()
		}
	}
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("blob/fs: %w", cerr)
	}
	return err
}

func (w *writer) Cancel(ctx context.Context) error {
	if w.done {
		return blob.ErrClosed
	}
	w.done = true
	defer w.s.releaseID(w.id)
	w.f.Close()
	if err := os.RemoveAll(w.s.uploadDir(w.id)); err != nil {
		return fmt.Errorf("blob/fs: cancel upload %s: %w", w.id, err)
	}
	return nil
}

func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest) error {
	if w.done {
		return blob.ErrClosed
	}
	if err := blob.ValidateDigest(expected); err != nil {
		return err
	}
	if size >= 0 && size != w.size {
		return fmt.Errorf("%w: upload %s has %d bytes, expected %d", blob.ErrSizeMismatch, w.id, w.size, size)
	}
	got, err := w.digest(expected.Algorithm())
	if err != nil {
		w.Close()
		return err
	}
	if got != expected {
		return fmt.Errorf("%w: upload %s is %s, expected %s", blob.ErrDigestMismatch, w.id, got, expected)
	}
	if err := ctx.Err(); err != nil {
		w.Close()
		return err
	}
	if err := w.publish(expected); err != nil {
		w.Close()
		return err
	}
	w.done = true
	w.s.releaseID(w.id)
	return nil
}

// digest returns the digest of the upload with alg, from the running hash
// when it uses alg and by re-reading the data otherwise.
func (w *writer) digest(alg digest.Algorithm) (digest.Digest, error) {
	if alg == w.alg {
		return digest.NewDigest(alg, w.hash), nil
	}
	h := alg.Hash()
	if err := w.rehash(h); err != nil {
		return "", err
	}
	return digest.NewDigest(alg, h), nil
}

// publish makes the verified upload the blob d and removes the upload.
func (w *writer) publish(d digest.Digest) error {
	target := w.s.blobPath(d)
	if _, err := os.Stat(target); err == nil {
		// Same content is already there: keep the existing file.
		w.f.Close()
		return w.removeUpload()
	}
	if err := w.s.syncFile(w.f); err != nil {
		return fmt.Errorf("blob/fs: sync upload %s: %w", w.id, err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("blob/fs: %w", err)
	}
	if err := mkdirSynced(filepath.Dir(target)); err != nil {
		return err
	}
	if err := os.Rename(w.path("data"), target); err != nil {
		return fmt.Errorf("blob/fs: commit upload %s: %w", w.id, err)
	}
	_ = os.Chmod(target, blobMode) // best effort: blobs are immutable, the mode only says so
	if err := syncDir(filepath.Dir(target)); err != nil {
		return err
	}
	return w.removeUpload()
}

func (w *writer) removeUpload() error {
	if err := os.RemoveAll(w.s.uploadDir(w.id)); err != nil {
		return fmt.Errorf("blob/fs: remove upload %s: %w", w.id, err)
	}
	return nil
}

// mkdirSynced creates dir and any missing parents, fsyncing the parent of each
// directory it creates so the new entries survive a crash.
func mkdirSynced(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if err := mkdirSynced(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("blob/fs: %w", err)
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blob/fs: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("blob/fs: sync %s: %w", dir, err)
	}
	return nil
}

// notFound maps a missing file to blob.ErrNotFound and wraps anything else.
func notFound(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", blob.ErrNotFound, what)
	}
	return fmt.Errorf("blob/fs: %s: %w", what, err)
}
