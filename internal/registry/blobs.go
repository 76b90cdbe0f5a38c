package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/blob"
	"github.com/berth-dev/berth/internal/store"
)

// base answers GET /v2/: the API is there and the credentials are good.
func (r *Registry) base(w http.ResponseWriter, req *http.Request, _ route) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	_, _ = io.WriteString(w, "{}")
	return nil
}

// parseDigest parses a digest from a URL, as DIGEST_INVALID on failure.
func parseDigest(s string) (digest.Digest, error) {
	d := digest.Digest(s)
	if err := blob.ValidateDigest(d); err != nil {
		return "", errorf(errDigestInvalid, "invalid digest %q", s).because(err)
	}
	return d, nil
}

// getBlob serves GET and HEAD /v2/<repo>/blobs/<digest>, with Range support.
func (r *Registry) getBlob(w http.ResponseWriter, req *http.Request, rt route) error {
	d, err := parseDigest(rt.ref)
	if err != nil {
		return err
	}
	ctx := req.Context()
	var link blobLinkRecord
	var found bool
	err = r.store.View(ctx, func(tx store.Tx) error {
		found, err = getJSON(tx, r.tables.blobs, repoKey(rt.repo, d.String()), &link)
		return err
	})
	if err != nil {
		return err
	}
	if !found {
		return newError(errBlobUnknown).withDetail(map[string]string{"digest": d.String()})
	}
	f, err := r.blobs.Open(ctx, d)
	if errors.Is(err, blob.ErrNotFound) {
		return newError(errBlobUnknown).withDetail(map[string]string{"digest": d.String()}).because(err)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	http.ServeContent(w, req, "", time.Time{}, f)
	return nil
}

// startUpload serves POST /v2/<repo>/blobs/uploads/: a monolithic upload when
// ?digest= is given, otherwise a new upload session. Cross-repository mounts
// (?mount=&from=) are answered with a new session, which the spec allows.
func (r *Registry) startUpload(w http.ResponseWriter, req *http.Request, rt route) error {
	ctx := req.Context()
	q := req.URL.Query()
	if q.Has("digest") {
		d, err := parseDigest(q.Get("digest"))
		if err != nil {
			return err
		}
		bw, err := r.blobs.Create(ctx, uuid.NewString(), d.Algorithm())
		if err != nil {
			return err
		}
		if _, err := copyBody(bw, req.Body); err != nil {
			_ = bw.Cancel(ctx)
			return err
		}
		if err := r.commitUpload(ctx, bw, rt.repo, d, false); err != nil {
			return err
		}
		blobCreated(w, rt.repo, d)
		return nil
	}

	var alg digest.Algorithm
	if a := q.Get("digest-algorithm"); a != "" {
		alg = digest.Algorithm(a)
		if err := blob.ValidateAlgorithm(alg); err != nil {
			return errorf(errDigestInvalid, "unsupported digest algorithm %q", a).because(err)
		}
	}
	id := uuid.NewString()
	bw, err := r.blobs.Create(ctx, id, alg)
	if err != nil {
		return err
	}
	if err := bw.Close(); err != nil {
		return err
	}
	err = r.store.Update(ctx, func(tx store.Tx) error {
		return putJSON(tx, r.tables.uploads, id, uploadRecord{Repository: rt.repo, Started: r.clock.Now().UTC()})
	})
	if err != nil {
		return err
	}
	uploadAccepted(w, rt.repo, id, 0)
	return nil
}

// resumeUpload reopens the upload a request addresses, checking that it
// belongs to the request's repository.
func (r *Registry) resumeUpload(ctx context.Context, rt route) (blob.Writer, error) {
	unknown := func(err error) error {
		return newError(errBlobUploadUnknown).withDetail(map[string]string{"uuid": rt.ref}).because(err)
	}
	if err := blob.ValidUploadID(rt.ref); err != nil {
		return nil, unknown(err)
	}
	var rec uploadRecord
	var found bool
	err := r.store.View(ctx, func(tx store.Tx) (err error) {
		found, err = getJSON(tx, r.tables.uploads, rt.ref, &rec)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !found || rec.Repository != rt.repo {
		return nil, unknown(errors.New("no upload record for this repository"))
	}
	bw, err := r.blobs.Resume(ctx, rt.ref)
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return nil, unknown(err)
	case errors.Is(err, blob.ErrBusy):
		return nil, newError(errBlobUploadBusy).because(err)
	case err != nil:
		return nil, err
	}
	return bw, nil
}

// uploadStatus serves GET on an upload: how much has arrived.
func (r *Registry) uploadStatus(w http.ResponseWriter, req *http.Request, rt route) error {
	bw, err := r.resumeUpload(req.Context(), rt)
	if err != nil {
		return err
	}
	size := bw.Size()
	if err := bw.Close(); err != nil {
		return err
	}
	uploadHeaders(w, rt.repo, rt.ref, size)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// patchUpload serves PATCH on an upload: append a chunk. Content-Range is
// optional; when present it must start where the upload ends.
func (r *Registry) patchUpload(w http.ResponseWriter, req *http.Request, rt route) error {
	bw, err := r.resumeUpload(req.Context(), rt)
	if err != nil {
		return err
	}
	defer bw.Close() // after a successful Close below this is a no-op
	if cr := req.Header.Get("Content-Range"); cr != "" {
		start, end, ok := parseContentRange(cr)
		if !ok || start != bw.Size() {
			uploadHeaders(w, rt.repo, rt.ref, bw.Size())
			return errorf(errRangeInvalid, "content range %q does not continue the upload at %d", cr, bw.Size())
		}
		if req.ContentLength >= 0 && req.ContentLength != end-start+1 {
			return errorf(errSizeInvalid, "content range %q does not match content length %d", cr, req.ContentLength)
		}
	}
	if _, err := copyBody(bw, req.Body); err != nil {
		return err
	}
	size := bw.Size()
	if err := bw.Close(); err != nil {
		return err
	}
	uploadAccepted(w, rt.repo, rt.ref, size)
	return nil
}

// completeUpload serves PUT on an upload: append the optional last chunk,
// verify the digest and make the blob part of the repository.
func (r *Registry) completeUpload(w http.ResponseWriter, req *http.Request, rt route) error {
	d, err := parseDigest(req.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	ctx := req.Context()
	bw, err := r.resumeUpload(ctx, rt)
	if err != nil {
		return err
	}
	if _, err := copyBody(bw, req.Body); err != nil {
		_ = bw.Close()
		return err
	}
	if err := r.commitUpload(ctx, bw, rt.repo, d, true); err != nil {
		return err
	}
	blobCreated(w, rt.repo, d)
	return nil
}

// cancelUpload serves DELETE on an upload: discard it.
func (r *Registry) cancelUpload(w http.ResponseWriter, req *http.Request, rt route) error {
	ctx := req.Context()
	bw, err := r.resumeUpload(ctx, rt)
	if err != nil {
		return err
	}
	if err := bw.Cancel(ctx); err != nil {
		return err
	}
	err = r.store.Update(ctx, func(tx store.Tx) error { return tx.Delete(r.tables.uploads, rt.ref) })
	if err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// commitUpload commits bw as blob d and links it into repo, in one store
// transaction with removing the upload's record when it has one. On a
// digest mismatch the upload is discarded and nothing becomes visible.
func (r *Registry) commitUpload(ctx context.Context, bw blob.Writer, repo string, d digest.Digest, recorded bool) error {
	id, size := bw.ID(), bw.Size()
	err := bw.Commit(ctx, size, d)
	if errors.Is(err, blob.ErrDigestMismatch) || errors.Is(err, blob.ErrSizeMismatch) {
		_ = bw.Cancel(ctx)
		if recorded {
			_ = r.store.Update(ctx, func(tx store.Tx) error { return tx.Delete(r.tables.uploads, id) })
		}
		return newError(errDigestInvalid).withDetail(map[string]string{"digest": d.String()}).because(err)
	}
	if err != nil {
		return err
	}
	now := r.clock.Now().UTC()
	return r.store.Update(ctx, func(tx store.Tx) error {
		if recorded {
			if err := tx.Delete(r.tables.uploads, id); err != nil {
				return err
			}
		}
		key := repoKey(repo, d.String())
		var link blobLinkRecord
		found, err := getJSON(tx, r.tables.blobs, key, &link)
		if err != nil || found {
			return err
		}
		return putJSON(tx, r.tables.blobs, key, blobLinkRecord{Size: size, Created: now})
	})
}

func uploadLocation(repo, id string) string { return "/v2/" + repo + "/blobs/uploads/" + id }

// uploadHeaders sets the headers that describe an upload in progress.
func uploadHeaders(w http.ResponseWriter, repo, id string, size int64) {
	end := size - 1
	if end < 0 {
		end = 0 // "0-0" for an empty upload, as distribution and ACR send
	}
	h := w.Header()
	h.Set("Location", uploadLocation(repo, id))
	h.Set("Range", fmt.Sprintf("0-%d", end))
	h.Set("Docker-Upload-UUID", id)
	h.Set("Content-Length", "0")
}

func uploadAccepted(w http.ResponseWriter, repo, id string, size int64) {
	uploadHeaders(w, repo, id, size)
	w.WriteHeader(http.StatusAccepted)
}

func blobCreated(w http.ResponseWriter, repo string, d digest.Digest) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

var contentRangePattern = regexp.MustCompile(`^(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?$`)

// parseContentRange parses a chunk's Content-Range: "<start>-<end>" as OCI
// specifies (inclusive), also accepting the "bytes " / "bytes=" forms some
// clients send.
func parseContentRange(s string) (start, end int64, ok bool) {
	m := contentRangePattern.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(m[1], 10, 64)
	end, err2 := strconv.ParseInt(m[2], 10, 64)
	if err1 != nil || err2 != nil || end < start {
		return 0, 0, false
	}
	return start, end, true
}
