package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/blob"
	"github.com/berth-dev/berth/internal/store"
)

// base answers GET /v2/: the API is there and the credentials are good.
func (r *Registry) base(w http.ResponseWriter, req *http.Request, _ *call) error {
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
// Reading a blob renews its link (see touchLink).
func (r *Registry) getBlob(w http.ResponseWriter, req *http.Request, rt *call) error {
	d, err := parseDigest(rt.ref)
	if err != nil {
		return err
	}
	ctx := req.Context()
	var found, stale bool
	err = r.store.View(ctx, func(tx store.Tx) error {
		repo, _, err := r.repository(tx, rt.repo)
		if err != nil {
			return err
		}
		if repo.Attrs.NoRead {
			return newError(errDenied)
		}
		key := repoKey(rt.repo, d.String())
		// A manifest's bytes are a blob of its repository too, as readable
		// as the manifest.
		var m manifestRecord
		isManifest, err := getJSON(tx, r.tables.manifests, key, &m)
		if err != nil {
			return err
		}
		if m.Attrs.NoRead {
			return newError(errDenied)
		}
		var l linkRecord
		linked, err := getJSON(tx, r.tables.blobs, key, &l)
		found, stale = linked || isManifest, linked && r.linkStale(l)
		return err
	})
	if err != nil {
		return err
	}
	if !found {
		return newError(errBlobUnknown).withDetail(map[string]string{"digest": d.String()})
	}
	if stale {
		if err := r.touchLink(ctx, rt.repo, d); err != nil {
			r.log.Warn("renewing a blob link failed", "repository", rt.repo, "digest", d, "error", err)
		}
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

// deleteBlob serves DELETE /v2/<repo>/blobs/<digest>: the blob leaves the
// repository. Its content stays until garbage collection finds it
// unreferenced.
func (r *Registry) deleteBlob(w http.ResponseWriter, req *http.Request, rt *call) error {
	d, err := parseDigest(rt.ref)
	if err != nil {
		return err
	}
	err = r.store.Update(req.Context(), func(tx store.Tx) error {
		repo, _, err := r.repository(tx, rt.repo)
		if err != nil {
			return err
		}
		if !repo.Attrs.deletable() {
			return newError(errDeleteDisabled)
		}
		key := repoKey(rt.repo, d.String())
		found, err := exists(tx, r.tables.blobs, key)
		if err != nil {
			return err
		}
		if !found {
			return newError(errBlobUnknown).withDetail(map[string]string{"digest": d.String()})
		}
		return tx.Delete(r.tables.blobs, key)
	})
	if err != nil {
		return err
	}
	accepted(w)
	return nil
}

// accepted answers 202 with no body, as deletes do.
func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// repository reads a repository's record; found is false (and the record
// zero, with every attribute enabled) when it does not exist yet.
func (r *Registry) repository(tx store.Tx, repo string) (rec repositoryRecord, found bool, err error) {
	found, err = getJSON(tx, r.tables.repositories, repo, &rec)
	return rec, found, err
}

// checkWritable fails with DENIED when the repository refuses pushes.
func (r *Registry) checkWritable(ctx context.Context, repo string) error {
	return r.store.View(ctx, func(tx store.Tx) error {
		rec, _, err := r.repository(tx, repo)
		if err == nil && rec.Attrs.NoWrite {
			return errorf(errDenied, "repository %s is write-disabled", repo)
		}
		return err
	})
}

// startUpload serves POST /v2/<repo>/blobs/uploads/: a cross-repository
// mount (?mount=, with or without from=), a monolithic upload (?digest=),
// or a new upload session.
func (r *Registry) startUpload(w http.ResponseWriter, req *http.Request, rt *call) error {
	ctx := req.Context()
	q := req.URL.Query()
	if err := r.checkWritable(ctx, rt.repo); err != nil {
		return err
	}
	if q.Has("mount") {
		mounted, d, err := r.mount(ctx, rt, q.Get("mount"), q.Get("from"))
		if err != nil {
			return err
		}
		if mounted {
			blobCreated(w, rt.repo, d)
			return nil
		}
		// Not mountable: a new session, as the spec says (202 below).
	} else if q.Has("digest") {
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

// mount links blob mount into rt.repo without an upload. The blob must be
// part of a repository the caller may pull from and that is not
// read-disabled: from, or without from any such repository of the registry.
// mounted is false when the blob cannot be mounted.
//
// Mounting without from is how the registry shares content across its
// repositories: a client that knows the digest gets it linked at once.
func (r *Registry) mount(ctx context.Context, rt *call, mount, from string) (mounted bool, d digest.Digest, err error) {
	d, err = parseDigest(mount)
	if err != nil {
		return false, "", err
	}
	if from != "" && (!validRepository(from) || !canPullFrom(rt.grant, from)) {
		return false, d, nil
	}
	release := r.locks.use(d)
	defer release()
	size, err := r.blobs.Stat(ctx, d)
	if errors.Is(err, blob.ErrNotFound) {
		return false, d, nil
	}
	if err != nil {
		return false, d, err
	}
	err = r.store.Update(ctx, func(tx store.Tx) error {
		sources := []string{from}
		if from == "" {
			var err error
			if sources, err = r.linkedIn(tx, d); err != nil {
				return err
			}
		}
		for _, src := range sources {
			ok, err := r.mountableFrom(tx, rt.grant, src, d)
			if err != nil {
				return err
			}
			if ok {
				mounted = true
				return r.link(tx, rt.repo, d, size)
			}
		}
		return nil
	})
	return mounted, d, err
}

// canPullFrom reports whether a grant allows pulling from repo. An access
// token's scopes name the target repository only (clients take them from
// the challenge), so the token's principal (its registry-wide permissions,
// or a scoped principal's rules for repo) decides too.
func canPullFrom(g grant, repo string) bool {
	return g.permits("repository", repo, ActionPull) || g.principal.mayOn(repo, ActionPull)
}

// linkedIn returns the repositories blob d is linked into.
func (r *Registry) linkedIn(tx store.Tx, d digest.Digest) ([]string, error) {
	var repos []string
	suffix := "@" + d.String()
	err := tx.Scan(r.tables.blobs, "", func(k string, _ []byte) bool {
		if repo, ok := strings.CutSuffix(k, suffix); ok {
			repos = append(repos, repo)
		}
		return true
	})
	return repos, err
}

// mountableFrom reports whether blob d may be mounted from repository src:
// it is linked there, src is not read-disabled and g may pull from it.
func (r *Registry) mountableFrom(tx store.Tx, g grant, src string, d digest.Digest) (bool, error) {
	if !canPullFrom(g, src) {
		return false, nil
	}
	rec, _, err := r.repository(tx, src)
	if err != nil || rec.Attrs.NoRead {
		return false, err
	}
	return exists(tx, r.tables.blobs, repoKey(src, d.String()))
}

// link makes blob d part of repo, or renews the link: its time is when it
// was last pushed, mounted or read there, so that garbage collection gives
// a manifest referencing it the whole link grace period to arrive.
func (r *Registry) link(tx store.Tx, repo string, d digest.Digest, size int64) error {
	return putJSON(tx, r.tables.blobs, repoKey(repo, d.String()), linkRecord{Size: size, Created: r.clock.Now().UTC()})
}

// linkRenewals is how many times per link grace period reads renew a link:
// at most one store write per link and repository every LinkGrace/24 (an
// hour by default), and a link lives at least 23/24 of the grace period
// after its last read.
const linkRenewals = 24

// linkStale reports whether a read should renew link l.
func (r *Registry) linkStale(l linkRecord) bool {
	return r.clock.Now().Sub(l.Created) >= r.linkGrace/linkRenewals
}

// touchLink renews blob d's link in repo, if it is still there (garbage
// collection may have removed it since it was read; its content may be gone
// too, so it must not come back).
func (r *Registry) touchLink(ctx context.Context, repo string, d digest.Digest) error {
	return r.store.Update(ctx, func(tx store.Tx) error {
		key := repoKey(repo, d.String())
		var l linkRecord
		found, err := getJSON(tx, r.tables.blobs, key, &l)
		if err != nil || !found {
			return err
		}
		l.Created = r.clock.Now().UTC()
		return putJSON(tx, r.tables.blobs, key, l)
	})
}

// resumeUpload reopens the upload a request addresses, checking that it
// belongs to the request's repository.
func (r *Registry) resumeUpload(ctx context.Context, rt *call) (blob.Writer, error) {
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
func (r *Registry) uploadStatus(w http.ResponseWriter, req *http.Request, rt *call) error {
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
func (r *Registry) patchUpload(w http.ResponseWriter, req *http.Request, rt *call) error {
	bw, err := r.resumeUpload(req.Context(), rt)
	if err != nil {
		return err
	}
	defer bw.Close() // after a successful Close below this is a no-op
	if err := checkChunk(w, req, rt, bw.Size()); err != nil {
		return err
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

// checkChunk checks a chunk's optional Content-Range: it must start where
// the upload ends (416 otherwise, with the upload's state) and match the
// Content-Length.
func checkChunk(w http.ResponseWriter, req *http.Request, rt *call, size int64) error {
	cr := req.Header.Get("Content-Range")
	if cr == "" {
		return nil
	}
	start, end, ok := parseContentRange(cr)
	if !ok || start != size {
		uploadHeaders(w, rt.repo, rt.ref, size)
		return errorf(errRangeInvalid, "content range %q does not continue the upload at %d", cr, size)
	}
	if req.ContentLength >= 0 && req.ContentLength != end-start+1 {
		return errorf(errSizeInvalid, "content range %q does not match content length %d", cr, req.ContentLength)
	}
	return nil
}

// completeUpload serves PUT on an upload: append the optional last chunk,
// verify the digest and make the blob part of the repository.
func (r *Registry) completeUpload(w http.ResponseWriter, req *http.Request, rt *call) error {
	d, err := parseDigest(req.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	ctx := req.Context()
	bw, err := r.resumeUpload(ctx, rt)
	if err != nil {
		return err
	}
	if err := checkChunk(w, req, rt, bw.Size()); err != nil {
		_ = bw.Close()
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
func (r *Registry) cancelUpload(w http.ResponseWriter, req *http.Request, rt *call) error {
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
// digest mismatch the upload is discarded and nothing becomes visible. The
// digest is held against garbage collection from before the content is
// committed until it is linked.
func (r *Registry) commitUpload(ctx context.Context, bw blob.Writer, repo string, d digest.Digest, recorded bool) error {
	id, size := bw.ID(), bw.Size()
	release := r.locks.use(d)
	defer release()
	err := bw.Commit(ctx, -1, d)
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
	return r.store.Update(ctx, func(tx store.Tx) error {
		if recorded {
			if err := tx.Delete(r.tables.uploads, id); err != nil {
				return err
			}
		}
		return r.link(tx, repo, d, size)
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
