package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/blob"
	"github.com/berth-dev/berth/internal/store"
)

// maxManifestSize is the largest manifest accepted, as distribution's.
const maxManifestSize = 4 << 20

// Manifest media types the registry accepts.
const (
	mediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// isIndex tells, for each accepted media type, whether it lists manifests
// (true) or references a config and layers (false).
var isIndex = map[string]bool{
	mediaTypeOCIManifest:    false,
	mediaTypeDockerManifest: false,
	mediaTypeOCIIndex:       true,
	mediaTypeDockerList:     true,
}

// manifestWire is the part of a manifest or index the registry reads.
type manifestWire struct {
	SchemaVersion int              `json:"schemaVersion"`
	MediaType     string           `json:"mediaType,omitempty"`
	Config        *descriptorWire  `json:"config,omitempty"`
	Layers        []descriptorWire `json:"layers,omitempty"`
	Manifests     []descriptorWire `json:"manifests,omitempty"`
	Subject       *descriptorWire  `json:"subject,omitempty"`
}

type descriptorWire struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	URLs      []string      `json:"urls,omitempty"`
}

// references returns the digests a manifest needs in the repository: blobs
// (config and layers) and, for an index, manifests.
type references struct {
	blobs, manifests []digest.Digest
}

// parseManifest validates a manifest body and returns its media type and
// references. contentType is the request's Content-Type.
func parseManifest(body []byte, contentType string) (string, references, error) {
	var m manifestWire
	if err := json.Unmarshal(body, &m); err != nil {
		return "", references{}, errorf(errManifestInvalid, "manifest is not valid JSON").because(err)
	}
	mt := m.MediaType
	if ct, _, err := mime.ParseMediaType(contentType); err == nil && ct != "application/json" && ct != "application/octet-stream" {
		if mt != "" && mt != ct {
			return "", references{}, errorf(errManifestInvalid, "mediaType %q does not match Content-Type %q", mt, ct)
		}
		mt = ct
	}
	if mt == "" { // OCI: the mediaType field SHOULD be set; infer it when not
		mt = mediaTypeOCIManifest
		if m.Manifests != nil {
			mt = mediaTypeOCIIndex
		}
	}
	index, ok := isIndex[mt]
	if !ok {
		return "", references{}, errorf(errManifestInvalid, "unsupported manifest media type %q", mt)
	}
	if m.SchemaVersion != 2 {
		return "", references{}, errorf(errManifestInvalid, "schemaVersion must be 2")
	}
	var refs references
	check := func(what string, d descriptorWire) error {
		if err := blob.ValidateDigest(d.Digest); err != nil {
			return errorf(errManifestInvalid, "%s has an invalid digest %q", what, d.Digest).because(err)
		}
		if d.Size < 0 {
			return errorf(errManifestInvalid, "%s has a negative size", what)
		}
		return nil
	}
	if index {
		for i, d := range m.Manifests {
			if err := check(fmt.Sprintf("manifests[%d]", i), d); err != nil {
				return "", references{}, err
			}
			refs.manifests = append(refs.manifests, d.Digest)
		}
	} else {
		if m.Config == nil {
			return "", references{}, errorf(errManifestInvalid, "manifest has no config")
		}
		if err := check("config", *m.Config); err != nil {
			return "", references{}, err
		}
		refs.blobs = append(refs.blobs, m.Config.Digest)
		for i, d := range m.Layers {
			if err := check(fmt.Sprintf("layers[%d]", i), d); err != nil {
				return "", references{}, err
			}
			if len(d.URLs) == 0 { // foreign layers live elsewhere
				refs.blobs = append(refs.blobs, d.Digest)
			}
		}
	}
	if m.Subject != nil { // a missing subject is allowed; only its form is checked
		if err := check("subject", *m.Subject); err != nil {
			return "", references{}, err
		}
	}
	return mt, refs, nil
}

// checkReferences fails with MANIFEST_BLOB_UNKNOWN unless every reference is
// part of repo.
func (r *Registry) checkReferences(tx store.Tx, repo string, refs references) error {
	for _, list := range []struct {
		table string
		ds    []digest.Digest
	}{{r.tables.blobs, refs.blobs}, {r.tables.manifests, refs.manifests}} {
		for _, d := range list.ds {
			_, err := tx.Get(list.table, repoKey(repo, d.String()))
			if errors.Is(err, store.ErrNotFound) {
				return errorf(errManifestBlobUnknown, "manifest references %s, which is not in repository %s", d, repo).
					withDetail(map[string]string{"digest": d.String()})
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// putManifest serves PUT /v2/<repo>/manifests/<tag or digest>.
func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, rt route) error {
	ctx := req.Context()
	alg := digest.Canonical
	if isDigest(rt.ref) {
		d, err := parseDigest(rt.ref)
		if err != nil {
			return err
		}
		alg = d.Algorithm()
	} else if !validTag(rt.ref) {
		return errorf(errTagInvalid, "invalid tag %q", rt.ref)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxManifestSize+1))
	if err != nil {
		return errorf(errManifestInvalid, "reading manifest failed").because(err)
	}
	if len(body) > maxManifestSize {
		return errorf(errManifestTooLarge, "manifest exceeds %d bytes", maxManifestSize)
	}
	mediaType, refs, err := parseManifest(body, req.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	d := alg.FromBytes(body)
	if isDigest(rt.ref) && digest.Digest(rt.ref) != d {
		return errorf(errDigestInvalid, "manifest digest is %s, not %s", d, rt.ref).withDetail(map[string]string{"digest": rt.ref})
	}
	// Check references before storing anything, so a rejected manifest leaves
	// no blob behind; the check is repeated in the transaction that counts.
	if err := r.store.View(ctx, func(tx store.Tx) error { return r.checkReferences(tx, rt.repo, refs) }); err != nil {
		return err
	}
	if err := r.putBlob(ctx, d, body); err != nil {
		return err
	}
	now := r.clock.Now().UTC()
	err = r.store.Update(ctx, func(tx store.Tx) error {
		if err := r.checkReferences(tx, rt.repo, refs); err != nil {
			return err
		}
		repo := repositoryRecord{Created: now}
		if _, err := getJSON(tx, r.tables.repositories, rt.repo, &repo); err != nil {
			return err
		}
		repo.Updated = now
		if err := putJSON(tx, r.tables.repositories, rt.repo, repo); err != nil {
			return err
		}
		mkey := repoKey(rt.repo, d.String())
		m := manifestRecord{MediaType: mediaType, Size: int64(len(body)), Created: now}
		if _, err := getJSON(tx, r.tables.manifests, mkey, &m); err != nil {
			return err
		}
		m.MediaType, m.Size = mediaType, int64(len(body))
		if err := putJSON(tx, r.tables.manifests, mkey, m); err != nil {
			return err
		}
		if isDigest(rt.ref) {
			return nil
		}
		t := tagRecord{Created: now}
		if _, err := getJSON(tx, r.tables.tags, tagKey(rt.repo, rt.ref), &t); err != nil {
			return err
		}
		t.Digest, t.Updated = d.String(), now
		return putJSON(tx, r.tables.tags, tagKey(rt.repo, rt.ref), t)
	})
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Location", "/v2/"+rt.repo+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// putBlob stores small content whose digest is known, such as a manifest.
func (r *Registry) putBlob(ctx context.Context, d digest.Digest, content []byte) error {
	bw, err := r.blobs.Create(ctx, uuid.NewString(), d.Algorithm())
	if err != nil {
		return err
	}
	if _, err := bw.Write(content); err != nil {
		_ = bw.Cancel(ctx)
		return err
	}
	if err := bw.Commit(ctx, int64(len(content)), d); err != nil {
		_ = bw.Cancel(ctx)
		return err
	}
	return nil
}

// getManifest serves GET and HEAD /v2/<repo>/manifests/<tag or digest>. The
// stored bytes are returned as they were pushed, with their media type.
func (r *Registry) getManifest(w http.ResponseWriter, req *http.Request, rt route) error {
	ctx := req.Context()
	if isDigest(rt.ref) {
		if _, err := parseDigest(rt.ref); err != nil {
			return err
		}
	} else if !validTag(rt.ref) {
		return errorf(errTagInvalid, "invalid tag %q", rt.ref)
	}
	var (
		dgst string
		m    manifestRecord
	)
	err := r.store.View(ctx, func(tx store.Tx) error {
		dgst = rt.ref
		if !isDigest(rt.ref) {
			var t tagRecord
			found, err := getJSON(tx, r.tables.tags, tagKey(rt.repo, rt.ref), &t)
			if err != nil {
				return err
			}
			if !found {
				return r.manifestUnknown(tx, rt)
			}
			dgst = t.Digest
		}
		found, err := getJSON(tx, r.tables.manifests, repoKey(rt.repo, dgst), &m)
		if err != nil {
			return err
		}
		if !found {
			return r.manifestUnknown(tx, rt)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var body []byte
	if req.Method != http.MethodHead {
		f, err := r.blobs.Open(ctx, digest.Digest(dgst))
		if err != nil {
			return fmt.Errorf("manifest %s of %s: %w", dgst, rt.repo, err)
		}
		defer f.Close()
		if body, err = io.ReadAll(io.LimitReader(f, maxManifestSize+1)); err != nil {
			return err
		}
		if int64(len(body)) != m.Size {
			return fmt.Errorf("manifest %s of %s: stored size %d, record says %d", dgst, rt.repo, len(body), m.Size)
		}
	}
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	h.Set("Docker-Content-Digest", dgst)
	h.Set("ETag", `"`+dgst+`"`)
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = io.Copy(w, bytes.NewReader(body))
	}
	return nil
}

// manifestUnknown returns NAME_UNKNOWN when the repository does not exist and
// MANIFEST_UNKNOWN otherwise.
func (r *Registry) manifestUnknown(tx store.Tx, rt route) error {
	if _, err := tx.Get(r.tables.repositories, rt.repo); errors.Is(err, store.ErrNotFound) {
		return errorf(errNameUnknown, "repository %q is not found", rt.repo).withDetail(map[string]string{"name": rt.repo})
	} else if err != nil {
		return err
	}
	return newError(errManifestUnknown).withDetail(map[string]string{"reference": rt.ref})
}
