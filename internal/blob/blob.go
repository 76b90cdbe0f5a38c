// Package blob defines berth's content-addressed blob store: the bytes of one
// registry's layers, configs and manifests, addressed by their digest.
//
// A Store knows nothing about repositories, tags or media types; that metadata
// lives in the state store (internal/store) and is owned by the registry. A blob
// becomes visible only through Writer.Commit, which checks the digest computed
// while the bytes streamed in and then makes the blob appear atomically, so a
// reader never sees a partial or unverified blob.
//
// Uploads are resumable: a Writer may be closed at the end of one HTTP request
// and reopened with Store.Resume by the next, without re-reading what was already
// written. Implementations: blob/fs (the product) and blob/memory (unit tests).
// Both must pass blobtest.Run.
package blob

import (
	"context"
	_ "crypto/sha256" // registers sha256 with go-digest
	_ "crypto/sha512" // registers sha512 with go-digest
	"errors"
	"fmt"
	"io"
	"regexp"

	"github.com/opencontainers/go-digest"
)

// Error classes. Implementations wrap them with %w and a detail; callers test
// them with errors.Is.
var (
	// ErrNotFound: no blob with that digest, or no upload with that id.
	ErrNotFound = errors.New("blob: not found")
	// ErrAlreadyExists: Create was given the id of an upload that exists.
	ErrAlreadyExists = errors.New("blob: already exists")
	// ErrBusy: another Writer holds the upload open.
	ErrBusy = errors.New("blob: upload in use")
	// ErrDigestMismatch: the written bytes do not hash to the expected digest.
	ErrDigestMismatch = errors.New("blob: digest mismatch")
	// ErrSizeMismatch: the number of written bytes is not the expected size.
	ErrSizeMismatch = errors.New("blob: size mismatch")
	// ErrInvalidDigest: the digest is malformed or its algorithm unsupported.
	ErrInvalidDigest = errors.New("blob: invalid or unsupported digest")
	// ErrInvalidUploadID: the upload id is not one Store accepts (see ValidUploadID).
	ErrInvalidUploadID = errors.New("blob: invalid upload id")
	// ErrClosed: the Writer was already closed, committed or cancelled.
	ErrClosed = errors.New("blob: writer closed")
)

// Store holds the blobs of one registry.
//
// All methods are safe for concurrent use. At most one Writer may be open for a
// given upload at a time; different uploads proceed in parallel.
type Store interface {
	// Stat returns the size of the committed blob dgst, or ErrNotFound. It
	// costs one metadata lookup and reads no content.
	Stat(ctx context.Context, dgst digest.Digest) (int64, error)

	// Open returns a reader of the committed blob dgst, or ErrNotFound. The
	// reader seeks (for HTTP Range requests) and must be closed. A blob deleted
	// while open stays readable through the open reader.
	Open(ctx context.Context, dgst digest.Digest) (io.ReadSeekCloser, error)

	// Create starts an empty upload named id (see ValidUploadID) that hashes
	// with alg while bytes stream in; alg "" means digest.Canonical (sha256).
	// It returns ErrAlreadyExists if the upload exists. The Writer holds the
	// upload until it is closed, committed or cancelled.
	Create(ctx context.Context, id string, alg digest.Algorithm) (Writer, error)

	// Resume reopens the upload id to continue writing at its end. It returns
	// ErrNotFound for an unknown upload and ErrBusy while another Writer holds
	// it. Resuming restores the saved hash state; only when that state is
	// missing or stale does it re-read the bytes written so far.
	Resume(ctx context.Context, id string) (Writer, error)

	// Delete removes the committed blob dgst, or returns ErrNotFound.
	// Uploads are not affected.
	Delete(ctx context.Context, dgst digest.Digest) error

	// Walk calls fn with the digest and size of every committed blob, in no
	// particular order, and stops at the first error fn returns, returning
	// it. Blobs committed or deleted during the walk may or may not be seen.
	// It costs a listing of the whole store (garbage collection uses it).
	Walk(ctx context.Context, fn func(dgst digest.Digest, size int64) error) error

	// Uploads calls fn with the id and current size of every upload, held
	// or not, like Walk.
	Uploads(ctx context.Context, fn func(id string, size int64) error) error
}

// Writer appends to one upload. It is not safe for concurrent use.
type Writer interface {
	// Write appends p to the upload and feeds it to the running hash.
	io.Writer

	// ID returns the upload id.
	ID() string

	// Size returns the number of bytes written to the upload so far,
	// including those written through earlier Writers of the same upload.
	Size() int64

	// Close saves the upload (bytes and hash state) so that Resume can
	// continue it, and releases it. Nothing becomes visible. A saved hash
	// state never describes bytes that a crash could still lose: the bytes
	// are made durable first (once per Close, not per Write).
	Close() error

	// Commit checks the upload against expected (and against size, unless
	// size is negative), then makes it the blob expected, atomically and
	// durably, and removes the upload. If the blob already exists the upload
	// is verified and discarded. On ErrDigestMismatch or ErrSizeMismatch
	// nothing becomes visible and the upload stays as it was, still held by
	// this Writer: Cancel or Close it. Any other outcome releases the Writer.
	Commit(ctx context.Context, size int64, expected digest.Digest) error

	// Cancel discards the upload and releases the Writer.
	Cancel(ctx context.Context) error
}

// Algorithms lists the digest algorithms a Store accepts, canonical first.
var Algorithms = []digest.Algorithm{digest.SHA256, digest.SHA512}

// ValidateDigest reports whether d is well formed and uses one of Algorithms.
// The error wraps ErrInvalidDigest.
func ValidateDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidDigest, d, err)
	}
	return ValidateAlgorithm(d.Algorithm())
}

// ValidateAlgorithm reports whether alg is one of Algorithms. The error wraps
// ErrInvalidDigest.
func ValidateAlgorithm(alg digest.Algorithm) error {
	for _, a := range Algorithms {
		if a == alg {
			return nil
		}
	}
	return fmt.Errorf("%w: algorithm %q", ErrInvalidDigest, alg)
}

var uploadIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// ValidUploadID reports whether id may name an upload: 1 to 128 ASCII letters,
// digits, '-' or '_', not starting with '-' or '_'. The restriction keeps ids
// safe as file names.
func ValidUploadID(id string) error {
	if !uploadIDPattern.MatchString(id) {
		return fmt.Errorf("%w: %q", ErrInvalidUploadID, id)
	}
	return nil
}
