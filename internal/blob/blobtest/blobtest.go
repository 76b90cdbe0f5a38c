// Package blobtest is the conformance suite every blob.Store implementation
// must pass. An implementation's test calls Run with a constructor that returns
// a fresh, empty store.
package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/blob"
)

// Run runs the suite. newStore must return a new empty store for each call.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"MissingBlob", testMissingBlob},
		{"WriteCommitRead", testWriteCommitRead},
		{"EmptyBlob", testEmptyBlob},
		{"SeekAndRange", testSeek},
		{"NotVisibleBeforeCommit", testNotVisibleBeforeCommit},
		{"ResumeKeepsHash", testResumeKeepsHash},
		{"DigestMismatch", testDigestMismatch},
		{"SizeMismatch", testSizeMismatch},
		{"CommitInvalidDigest", testCommitInvalidDigest},
		{"CommitExistingBlob", testCommitExisting},
		{"CreateDuplicate", testCreateDuplicate},
		{"ResumeUnknown", testResumeUnknown},
		{"ResumeBusy", testResumeBusy},
		{"Cancel", testCancel},
		{"Delete", testDelete},
		{"SHA512", testSHA512},
		{"OtherAlgorithmAtCommit", testOtherAlgorithmAtCommit},
		{"InvalidUploadIDs", testInvalidUploadIDs},
		{"InvalidDigests", testInvalidDigests},
		{"ClosedWriter", testClosedWriter},
		{"ConcurrentUploads", testConcurrentUploads},
		{"WalkAndUploads", testWalkAndUploads},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

func is(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// put writes data as a new upload and commits it.
func put(t *testing.T, s blob.Store, id string, data []byte) digest.Digest {
	t.Helper()
	ctx := context.Background()
	w, err := s.Create(ctx, id, "")
	ok(t, err)
	_, err = w.Write(data)
	ok(t, err)
	d := digest.FromBytes(data)
	ok(t, w.Commit(ctx, int64(len(data)), d))
	return d
}

// content reads the whole blob d.
func content(t *testing.T, s blob.Store, d digest.Digest) []byte {
	t.Helper()
	r, err := s.Open(context.Background(), d)
	ok(t, err)
	defer r.Close()
	b, err := io.ReadAll(r)
	ok(t, err)
	return b
}

func testMissingBlob(t *testing.T, s blob.Store) {
	ctx := context.Background()
	d := digest.FromString("nothing")
	_, err := s.Stat(ctx, d)
	is(t, err, blob.ErrNotFound)
	_, err = s.Open(ctx, d)
	is(t, err, blob.ErrNotFound)
	is(t, s.Delete(ctx, d), blob.ErrNotFound)
}

func testWriteCommitRead(t *testing.T, s blob.Store) {
	ctx := context.Background()
	data := []byte("hello, berth")
	w, err := s.Create(ctx, "up1", digest.SHA256)
	ok(t, err)
	if w.ID() != "up1" {
		t.Errorf("ID() = %q", w.ID())
	}
	for _, part := range [][]byte{data[:5], data[5:]} {
		_, err := w.Write(part)
		ok(t, err)
	}
	if w.Size() != int64(len(data)) {
		t.Errorf("Size() = %d, want %d", w.Size(), len(data))
	}
	d := digest.FromBytes(data)
	ok(t, w.Commit(ctx, int64(len(data)), d))
	size, err := s.Stat(ctx, d)
	ok(t, err)
	if size != int64(len(data)) {
		t.Errorf("Stat = %d, want %d", size, len(data))
	}
	if got := content(t, s, d); !bytes.Equal(got, data) {
		t.Errorf("content = %q, want %q", got, data)
	}
	// The upload is gone after a commit.
	_, err = s.Resume(ctx, "up1")
	is(t, err, blob.ErrNotFound)
}

func testEmptyBlob(t *testing.T, s blob.Store) {
	d := put(t, s, "empty", nil)
	if d != "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("digest of empty = %s", d)
	}
	size, err := s.Stat(context.Background(), d)
	ok(t, err)
	if size != 0 {
		t.Errorf("Stat = %d", size)
	}
}

func testSeek(t *testing.T, s blob.Store) {
	data := []byte("0123456789abcdef")
	d := put(t, s, "seek", data)
	r, err := s.Open(context.Background(), d)
	ok(t, err)
	defer r.Close()
	end, err := r.Seek(0, io.SeekEnd)
	ok(t, err)
	if end != int64(len(data)) {
		t.Errorf("Seek(end) = %d", end)
	}
	_, err = r.Seek(10, io.SeekStart)
	ok(t, err)
	b := make([]byte, 4)
	_, err = io.ReadFull(r, b)
	ok(t, err)
	if string(b) != "abcd" {
		t.Errorf("read at 10 = %q", b)
	}
}

func testNotVisibleBeforeCommit(t *testing.T, s blob.Store) {
	ctx := context.Background()
	data := []byte("partial")
	w, err := s.Create(ctx, "partial", "")
	ok(t, err)
	_, err = w.Write(data)
	ok(t, err)
	d := digest.FromBytes(data)
	_, err = s.Stat(ctx, d)
	is(t, err, blob.ErrNotFound)
	ok(t, w.Close())
	_, err = s.Stat(ctx, d)
	is(t, err, blob.ErrNotFound)
}

func testResumeKeepsHash(t *testing.T, s blob.Store) {
	ctx := context.Background()
	chunks := []string{"first chunk|", "second chunk|", "", "third"}
	w, err := s.Create(ctx, "resume", "")
	ok(t, err)
	ok(t, w.Close())
	var all string
	for _, c := range chunks {
		w, err := s.Resume(ctx, "resume")
		ok(t, err)
		if w.Size() != int64(len(all)) {
			t.Fatalf("resumed Size() = %d, want %d", w.Size(), len(all))
		}
		_, err = io.WriteString(w, c)
		ok(t, err)
		all += c
		ok(t, w.Close())
	}
	w, err = s.Resume(ctx, "resume")
	ok(t, err)
	d := digest.FromString(all)
	ok(t, w.Commit(ctx, -1, d))
	if got := content(t, s, d); string(got) != all {
		t.Errorf("content = %q, want %q", got, all)
	}
}

func testDigestMismatch(t *testing.T, s blob.Store) {
	ctx := context.Background()
	w, err := s.Create(ctx, "mismatch", "")
	ok(t, err)
	_, err = io.WriteString(w, "actual")
	ok(t, err)
	wrong := digest.FromString("claimed")
	is(t, w.Commit(ctx, -1, wrong), blob.ErrDigestMismatch)
	_, err = s.Stat(ctx, wrong)
	is(t, err, blob.ErrNotFound)
	_, err = s.Stat(ctx, digest.FromString("actual"))
	is(t, err, blob.ErrNotFound)
	// The writer still holds the upload, unchanged.
	if w.Size() != 6 {
		t.Errorf("Size() after mismatch = %d", w.Size())
	}
	_, err = s.Resume(ctx, "mismatch")
	is(t, err, blob.ErrBusy)
	ok(t, w.Commit(ctx, 6, digest.FromString("actual")))
}

func testSizeMismatch(t *testing.T, s blob.Store) {
	ctx := context.Background()
	w, err := s.Create(ctx, "size", "")
	ok(t, err)
	_, err = io.WriteString(w, "12345")
	ok(t, err)
	d := digest.FromString("12345")
	is(t, w.Commit(ctx, 4, d), blob.ErrSizeMismatch)
	_, err = s.Stat(ctx, d)
	is(t, err, blob.ErrNotFound)
	ok(t, w.Cancel(ctx))
	_, err = s.Resume(ctx, "size")
	is(t, err, blob.ErrNotFound)
}

func testCommitInvalidDigest(t *testing.T, s blob.Store) {
	ctx := context.Background()
	w, err := s.Create(ctx, "baddigest", "")
	ok(t, err)
	_, err = io.WriteString(w, "x")
	ok(t, err)
	is(t, w.Commit(ctx, -1, "sha256:nothex"), blob.ErrInvalidDigest)
	is(t, w.Commit(ctx, -1, "md5:d41d8cd98f00b204e9800998ecf8427e"), blob.ErrInvalidDigest)
	ok(t, w.Commit(ctx, -1, digest.FromString("x")))
}

func testCommitExisting(t *testing.T, s blob.Store) {
	ctx := context.Background()
	data := []byte("twice")
	d := put(t, s, "one", data)
	r, err := s.Open(ctx, d) // an open reader must survive the second commit
	ok(t, err)
	defer r.Close()
	put(t, s, "two", data)
	b, err := io.ReadAll(r)
	ok(t, err)
	if !bytes.Equal(b, data) {
		t.Errorf("content = %q", b)
	}
	// Existing content does not excuse a wrong upload.
	w, err := s.Create(ctx, "three", "")
	ok(t, err)
	_, err = io.WriteString(w, "other")
	ok(t, err)
	is(t, w.Commit(ctx, -1, d), blob.ErrDigestMismatch)
	ok(t, w.Cancel(ctx))
	if got := content(t, s, d); !bytes.Equal(got, data) {
		t.Errorf("content = %q", got)
	}
}

func testCreateDuplicate(t *testing.T, s blob.Store) {
	ctx := context.Background()
	w, err := s.Create(ctx, "dup", "")
	ok(t, err)
	_, err = s.Create(ctx, "dup", "")
	is(t, err, blob.ErrAlreadyExists)
	ok(t, w.Close())
	_, err = s.Create(ctx, "dup", "")
	is(t, err, blob.ErrAlreadyExists)
}

func testResumeUnknown(t *testing.T, s blob.Store) {
	_, err := s.Resume(context.Background(), "unknown")
	is(t, err, blob.ErrNotFound)
}

func testResumeBusy(t *testing.T, s blob.Store) {
	ctx := context.Background()
	w, err := s.Create(ctx, "busy", "")
	ok(t, err)
	_, err = s.Resume(ctx, "busy")
	is(t, err, blob.ErrBusy)
	ok(t, w.Close())
	w2, err := s.Resume(ctx, "busy")
	ok(t, err)
	ok(t, w2.Close())
}

func testCancel(t *testing.T, s blob.Store) {
	ctx := context.Background()
	w, err := s.Create(ctx, "cancel", "")
	ok(t, err)
	_, err = io.WriteString(w, "gone")
	ok(t, err)
	ok(t, w.Close())
	w, err = s.Resume(ctx, "cancel")
	ok(t, err)
	ok(t, w.Cancel(ctx))
	_, err = s.Resume(ctx, "cancel")
	is(t, err, blob.ErrNotFound)
	_, err = s.Stat(ctx, digest.FromString("gone"))
	is(t, err, blob.ErrNotFound)
	// The id may be used again.
	w, err = s.Create(ctx, "cancel", "")
	ok(t, err)
	ok(t, w.Cancel(ctx))
}

func testDelete(t *testing.T, s blob.Store) {
	ctx := context.Background()
	d := put(t, s, "del", []byte("delete me"))
	ok(t, s.Delete(ctx, d))
	_, err := s.Stat(ctx, d)
	is(t, err, blob.ErrNotFound)
	is(t, s.Delete(ctx, d), blob.ErrNotFound)
	// It can be uploaded again.
	put(t, s, "del2", []byte("delete me"))
	_, err = s.Stat(ctx, d)
	ok(t, err)
}

func testSHA512(t *testing.T, s blob.Store) {
	ctx := context.Background()
	data := []byte("sha512 content")
	w, err := s.Create(ctx, "sha512", digest.SHA512)
	ok(t, err)
	_, err = w.Write(data[:3])
	ok(t, err)
	ok(t, w.Close())
	w, err = s.Resume(ctx, "sha512")
	ok(t, err)
	_, err = w.Write(data[3:])
	ok(t, err)
	d := digest.SHA512.FromBytes(data)
	ok(t, w.Commit(ctx, int64(len(data)), d))
	if got := content(t, s, d); !bytes.Equal(got, data) {
		t.Errorf("content = %q", got)
	}
}

func testOtherAlgorithmAtCommit(t *testing.T, s blob.Store) {
	ctx := context.Background()
	data := []byte("hashed with sha256, committed as sha512")
	w, err := s.Create(ctx, "other", digest.SHA256)
	ok(t, err)
	_, err = w.Write(data)
	ok(t, err)
	ok(t, w.Close())
	w, err = s.Resume(ctx, "other")
	ok(t, err)
	is(t, w.Commit(ctx, -1, digest.SHA512.FromString("not it")), blob.ErrDigestMismatch)
	d := digest.SHA512.FromBytes(data)
	ok(t, w.Commit(ctx, -1, d))
	if got := content(t, s, d); !bytes.Equal(got, data) {
		t.Errorf("content = %q", got)
	}
}

func testInvalidUploadIDs(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, id := range []string{"", "..", "../x", "a/b", "-lead", ".hidden", "sp ace", strings.Repeat("a", 129)} {
		_, err := s.Create(ctx, id, "")
		is(t, err, blob.ErrInvalidUploadID)
		_, err = s.Resume(ctx, id)
		is(t, err, blob.ErrInvalidUploadID)
	}
	_, err := s.Create(ctx, "alg", "md5")
	is(t, err, blob.ErrInvalidDigest)
}

func testInvalidDigests(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, d := range []digest.Digest{"", "sha256:", "sha256:../../etc/passwd", "sha256:ABC", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256"} {
		_, err := s.Stat(ctx, d)
		is(t, err, blob.ErrInvalidDigest)
		_, err = s.Open(ctx, d)
		is(t, err, blob.ErrInvalidDigest)
		is(t, s.Delete(ctx, d), blob.ErrInvalidDigest)
	}
}

func testClosedWriter(t *testing.T, s blob.Store) {
	ctx := context.Background()
	w, err := s.Create(ctx, "closed", "")
	ok(t, err)
	ok(t, w.Close())
	_, err = w.Write([]byte("x"))
	is(t, err, blob.ErrClosed)
	is(t, w.Close(), blob.ErrClosed)
	is(t, w.Commit(ctx, -1, digest.FromString("")), blob.ErrClosed)
	is(t, w.Cancel(ctx), blob.ErrClosed)
}

func testConcurrentUploads(t *testing.T, s blob.Store) {
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				ctx := context.Background()
				id := fmt.Sprintf("conc-%d", i)
				data := bytes.Repeat([]byte{byte(i)}, 64<<10)
				w, err := s.Create(ctx, id, "")
				if err != nil {
					return err
				}
				for off := 0; off < len(data); off += 4096 {
					if _, err := w.Write(data[off : off+4096]); err != nil {
						return err
					}
				}
				return w.Commit(ctx, int64(len(data)), digest.FromBytes(data))
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		ok(t, err)
	}
}

func testWalkAndUploads(t *testing.T, s blob.Store) {
	ctx := context.Background()
	walk := func() map[digest.Digest]int64 {
		got := map[digest.Digest]int64{}
		ok(t, s.Walk(ctx, func(d digest.Digest, n int64) error { got[d] = n; return nil }))
		return got
	}
	uploads := func() map[string]int64 {
		got := map[string]int64{}
		ok(t, s.Uploads(ctx, func(id string, n int64) error { got[id] = n; return nil }))
		return got
	}
	if len(walk()) != 0 || len(uploads()) != 0 {
		t.Fatalf("new store: blobs %v uploads %v", walk(), uploads())
	}
	a := put(t, s, "wa", []byte("walk a"))
	b := put(t, s, "wb", []byte("walk b!"))
	w, err := s.Create(ctx, "held", digest.SHA512)
	ok(t, err)
	_, err = w.Write([]byte("12345"))
	ok(t, err)
	idle, err := s.Create(ctx, "idle", "")
	ok(t, err)
	_, err = idle.Write([]byte("abc"))
	ok(t, err)
	ok(t, idle.Close())
	if got := walk(); len(got) != 2 || got[a] != 6 || got[b] != 7 {
		t.Errorf("Walk = %v", got)
	}
	if got := uploads(); len(got) != 2 || got["held"] != 5 || got["idle"] != 3 {
		t.Errorf("Uploads = %v", got)
	}
	stop := errors.New("stop")
	calls := 0
	is(t, s.Walk(ctx, func(digest.Digest, int64) error { calls++; return stop }), stop)
	if calls != 1 {
		t.Errorf("Walk went on after an error: %d calls", calls)
	}
	ok(t, w.Cancel(ctx))
	ok(t, s.Delete(ctx, a))
	if got := walk(); len(got) != 1 || got[b] != 7 {
		t.Errorf("Walk after delete = %v", got)
	}
	if got := uploads(); len(got) != 1 || got["idle"] != 3 {
		t.Errorf("Uploads after cancel = %v", got)
	}
}
