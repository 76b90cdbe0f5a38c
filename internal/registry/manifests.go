package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"

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
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        *descriptorWire   `json:"config,omitempty"`
	Layers        []descriptorWire  `json:"layers,omitempty"`
	Manifests     []descriptorWire  `json:"manifests,omitempty"`
	Subject       *descriptorWire   `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// descriptorWire is an OCI descriptor, as manifests and the referrers API
// carry it.
type descriptorWire struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Platform     *platformWire     `json:"platform,omitempty"`
}

type platformWire struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// parsedManifest is what the registry keeps of a manifest it accepted.
type parsedManifest struct {
	mediaType string
	rec       manifestRecord // without times, size and attributes
	// blobs and manifests must be part of the repository.
	blobs, manifests []digest.Digest
	config           *descriptorWire // of an image manifest
}

// mediaTypePattern is RFC 6838's restricted-name, type/subtype.
var mediaTypePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)

// parseManifest validates a manifest body and returns what the registry
// keeps of it. contentType is the request's Content-Type.
func parseManifest(body []byte, contentType string) (*parsedManifest, error) {
	var m manifestWire
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, errorf(errManifestInvalid, "manifest is not valid JSON").because(err)
	}
	mt := m.MediaType
	if ct, _, err := mime.ParseMediaType(contentType); err == nil && ct != "application/json" && ct != "application/octet-stream" {
		if mt != "" && mt != ct {
			return nil, errorf(errManifestInvalid, "mediaType %q does not match Content-Type %q", mt, ct)
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
		return nil, errorf(errManifestInvalid, "unsupported manifest media type %q", mt)
	}
	if m.SchemaVersion != 2 {
		return nil, errorf(errManifestInvalid, "schemaVersion must be 2")
	}
	if m.ArtifactType != "" && !mediaTypePattern.MatchString(m.ArtifactType) {
		return nil, errorf(errManifestInvalid, "invalid artifactType %q", m.ArtifactType)
	}
	p := &parsedManifest{mediaType: mt}
	p.rec.MediaType = mt
	p.rec.ArtifactType = m.ArtifactType
	p.rec.Annotations = m.Annotations
	check := func(what string, d descriptorWire) error {
		if err := blob.ValidateDigest(d.Digest); err != nil {
			return errorf(errManifestInvalid, "%s has an invalid digest %q", what, d.Digest).because(err)
		}
		if d.Size < 0 {
			return errorf(errManifestInvalid, "%s has a negative size", what)
		}
		if !mediaTypePattern.MatchString(d.MediaType) {
			return errorf(errManifestInvalid, "%s has an invalid mediaType %q", what, d.MediaType)
		}
		return nil
	}
	if index {
		if m.Config != nil || m.Layers != nil {
			return nil, errorf(errManifestInvalid, "an index has no config or layers")
		}
		for i, d := range m.Manifests {
			if err := check(fmt.Sprintf("manifests[%d]", i), d); err != nil {
				return nil, err
			}
			p.manifests = append(p.manifests, d.Digest)
			ref := platformRef{Digest: d.Digest.String()}
			if d.Platform != nil {
				ref.Architecture, ref.OS = d.Platform.Architecture, d.Platform.OS
			}
			p.rec.Manifests = append(p.rec.Manifests, ref)
		}
	} else {
		if m.Config == nil {
			return nil, errorf(errManifestInvalid, "manifest has no config")
		}
		if m.Manifests != nil {
			return nil, errorf(errManifestInvalid, "an image manifest has no manifests")
		}
		if err := check("config", *m.Config); err != nil {
			return nil, err
		}
		p.config = m.Config
		p.rec.ConfigMediaType = m.Config.MediaType
		if p.rec.ArtifactType == "" && m.Config.MediaType != mediaTypeOCIEmpty {
			p.rec.ArtifactType = m.Config.MediaType
		}
		p.blobs = append(p.blobs, m.Config.Digest)
		p.rec.ImageSize = m.Config.Size
		for i, d := range m.Layers {
			if err := check(fmt.Sprintf("layers[%d]", i), d); err != nil {
				return nil, err
			}
			if len(d.URLs) == 0 { // foreign layers live elsewhere
				p.blobs = append(p.blobs, d.Digest)
			}
			p.rec.ImageSize += d.Size
		}
		for _, d := range p.blobs {
			p.rec.Blobs = append(p.rec.Blobs, d.String())
		}
	}
	if m.Subject != nil { // a missing subject is allowed; only its form is checked
		if err := check("subject", *m.Subject); err != nil {
			return nil, err
		}
		p.rec.Subject = m.Subject.Digest.String()
	}
	return p, nil
}

// mediaTypeOCIEmpty is the config of artifacts that have none.
const mediaTypeOCIEmpty = "application/vnd.oci.empty.v1+json"

// checkReferences fails with MANIFEST_BLOB_UNKNOWN unless every reference is
// part of repo.
func (r *Registry) checkReferences(tx store.Tx, repo string, p *parsedManifest) error {
	for _, list := range []struct {
		table string
		ds    []digest.Digest
	}{{r.tables.blobs, p.blobs}, {r.tables.manifests, p.manifests}} {
		for _, d := range list.ds {
			found, err := exists(tx, list.table, repoKey(repo, d.String()))
			if err != nil {
				return err
			}
			if !found {
				return errorf(errManifestBlobUnknown, "manifest references %s, which is not in repository %s", d, repo).
					withDetail(map[string]string{"digest": d.String()})
			}
		}
	}
	return nil
}

// putManifest serves PUT /v2/<repo>/manifests/<tag or digest>[?tag=…].
func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, rt *call) error {
	ctx := req.Context()
	alg := digest.Canonical
	tags := req.URL.Query()["tag"]
	if isDigest(rt.ref) {
		d, err := parseDigest(rt.ref)
		if err != nil {
			return err
		}
		alg = d.Algorithm()
	} else {
		tags = append([]string{rt.ref}, tags...)
	}
	for _, t := range tags {
		if !validTag(t) {
			return errorf(errTagInvalid, "invalid tag %q", t).withDetail(map[string]string{"tag": t})
		}
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxManifestSize+1))
	if err != nil {
		return errorf(errManifestInvalid, "reading manifest failed").because(err)
	}
	if len(body) > maxManifestSize {
		return errorf(errManifestTooLarge, "manifest exceeds %d bytes", maxManifestSize)
	}
	p, err := parseManifest(body, req.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	d := alg.FromBytes(body)
	if isDigest(rt.ref) && digest.Digest(rt.ref) != d {
		return errorf(errDigestInvalid, "manifest digest is %s, not %s", d, rt.ref).withDetail(map[string]string{"digest": rt.ref})
	}
	// Check before storing anything, so a rejected manifest leaves no blob
	// behind; the checks are repeated in the transaction that counts.
	if err := r.store.View(ctx, func(tx store.Tx) error { return r.checkManifestPut(tx, rt.repo, d, tags, p) }); err != nil {
		return err
	}
	r.readPlatform(ctx, p)
	release := r.locks.use(d)
	defer release()
	if err := r.putBlob(ctx, d, body); err != nil {
		return err
	}
	now := r.clock.Now().UTC()
	err = r.store.Update(ctx, func(tx store.Tx) error {
		if err := r.checkManifestPut(tx, rt.repo, d, tags, p); err != nil {
			return err
		}
		repo, _, err := r.repository(tx, rt.repo)
		if err != nil {
			return err
		}
		if repo.Created.IsZero() {
			repo.Created = now
		}
		repo.Updated = now
		if err := putJSON(tx, r.tables.repositories, rt.repo, repo); err != nil {
			return err
		}
		mkey := repoKey(rt.repo, d.String())
		var old manifestRecord
		found, err := getJSON(tx, r.tables.manifests, mkey, &old)
		if err != nil {
			return err
		}
		m := p.rec
		m.Size = int64(len(body))
		m.ImageSize += m.Size
		m.Created, m.Updated = now, now
		if found {
			m.Created, m.Attrs = old.Created, old.Attrs
		}
		if err := putJSON(tx, r.tables.manifests, mkey, m); err != nil {
			return err
		}
		if m.Subject != "" {
			if err := tx.Put(r.tables.referrers, referrerKey(rt.repo, m.Subject, d.String()), nil); err != nil {
				return err
			}
		}
		for _, tag := range tags {
			t := tagRecord{Created: now}
			if _, err := getJSON(tx, r.tables.tags, tagKey(rt.repo, tag), &t); err != nil {
				return err
			}
			t.Digest, t.Updated = d.String(), now
			if err := putJSON(tx, r.tables.tags, tagKey(rt.repo, tag), t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Location", "/v2/"+rt.repo+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	if p.rec.Subject != "" {
		h.Set("OCI-Subject", p.rec.Subject)
	}
	for _, t := range tags {
		h.Add("OCI-Tag", t)
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// checkManifestPut checks that manifest d may be pushed into repo with tags:
// its references are there and no changeable attribute forbids it.
func (r *Registry) checkManifestPut(tx store.Tx, repo string, d digest.Digest, tags []string, p *parsedManifest) error {
	rec, _, err := r.repository(tx, repo)
	if err != nil {
		return err
	}
	if rec.Attrs.NoWrite {
		return errorf(errDenied, "repository %s is write-disabled", repo)
	}
	for _, tag := range tags {
		var t tagRecord
		found, err := getJSON(tx, r.tables.tags, tagKey(repo, tag), &t)
		if err != nil {
			return err
		}
		if !found || t.Digest == d.String() {
			continue
		}
		if t.Attrs.NoWrite {
			return errorf(errDenied, "tag %s is write-disabled", tag)
		}
		var cur manifestRecord
		if _, err := getJSON(tx, r.tables.manifests, repoKey(repo, t.Digest), &cur); err != nil {
			return err
		}
		if cur.Attrs.NoWrite {
			return errorf(errDenied, "tag %s points at a write-disabled manifest", tag)
		}
	}
	return r.checkReferences(tx, repo, p)
}

// readPlatform fills in an image manifest's architecture and OS from its
// config, as ACR reports them. Only image configs are read, and only small
// ones; failures leave them empty.
func (r *Registry) readPlatform(ctx context.Context, p *parsedManifest) {
	c := p.config
	if c == nil || c.Size > 1<<20 || (c.MediaType != "application/vnd.oci.image.config.v1+json" && c.MediaType != "application/vnd.docker.container.image.v1+json") {
		return
	}
	f, err := r.blobs.Open(ctx, c.Digest)
	if err != nil {
		return
	}
	defer f.Close()
	var cfg platformWire
	if json.NewDecoder(io.LimitReader(f, 1<<20)).Decode(&cfg) == nil {
		p.rec.Architecture, p.rec.OS = cfg.Architecture, cfg.OS
	}
}

// putBlob stores small content whose digest is known, such as a manifest.
func (r *Registry) putBlob(ctx context.Context, d digest.Digest, content []byte) error {
	if n, err := r.blobs.Stat(ctx, d); err == nil && n == int64(len(content)) {
		return nil // content addressed: already there
	}
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

// resolved is a manifest a request addresses, by tag or digest.
type resolved struct {
	digest string
	rec    manifestRecord
	tag    *tagRecord // when addressed by tag
	repo   repositoryRecord
}

// resolveManifest finds the manifest rt addresses: NAME_UNKNOWN when the
// repository does not exist, MANIFEST_UNKNOWN when the manifest does not.
func (r *Registry) resolveManifest(tx store.Tx, rt *call) (*resolved, error) {
	res := &resolved{digest: rt.ref}
	repo, repoFound, err := r.repository(tx, rt.repo)
	if err != nil {
		return nil, err
	}
	res.repo = repo
	unknown := func() error {
		if !repoFound {
			return errorf(errNameUnknown, "repository %q is not found", rt.repo).withDetail(map[string]string{"name": rt.repo})
		}
		return newError(errManifestUnknown).withDetail(map[string]string{"reference": rt.ref})
	}
	if !isDigest(rt.ref) {
		var t tagRecord
		found, err := getJSON(tx, r.tables.tags, tagKey(rt.repo, rt.ref), &t)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, unknown()
		}
		res.tag, res.digest = &t, t.Digest
	}
	found, err := getJSON(tx, r.tables.manifests, repoKey(rt.repo, res.digest), &res.rec)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, unknown()
	}
	return res, nil
}

// checkReference validates a manifest reference: a digest or a tag.
func checkReference(ref string) error {
	if isDigest(ref) {
		_, err := parseDigest(ref)
		return err
	}
	if !validTag(ref) {
		return errorf(errTagInvalid, "invalid tag %q", ref).withDetail(map[string]string{"tag": ref})
	}
	return nil
}

// getManifest serves GET and HEAD /v2/<repo>/manifests/<tag or digest>. The
// stored bytes are returned as they were pushed, with their media type.
func (r *Registry) getManifest(w http.ResponseWriter, req *http.Request, rt *call) error {
	ctx := req.Context()
	if err := checkReference(rt.ref); err != nil {
		return err
	}
	var res *resolved
	err := r.store.View(ctx, func(tx store.Tx) (err error) {
		res, err = r.resolveManifest(tx, rt)
		return err
	})
	if err != nil {
		return err
	}
	if res.repo.Attrs.NoRead || res.rec.Attrs.NoRead || (res.tag != nil && res.tag.Attrs.NoRead) {
		return newError(errDenied)
	}
	var body []byte
	if req.Method != http.MethodHead {
		if body, err = r.manifestBytes(ctx, digest.Digest(res.digest), res.rec.Size); err != nil {
			return fmt.Errorf("manifest %s of %s: %w", res.digest, rt.repo, err)
		}
	}
	h := w.Header()
	h.Set("Content-Type", res.rec.MediaType)
	h.Set("Content-Length", strconv.FormatInt(res.rec.Size, 10))
	h.Set("Docker-Content-Digest", res.digest)
	h.Set("ETag", `"`+res.digest+`"`)
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}

// manifestBytes returns a manifest's content, from the cache or the blob
// store.
func (r *Registry) manifestBytes(ctx context.Context, d digest.Digest, size int64) ([]byte, error) {
	if b, ok := r.manifestCache.get(d); ok {
		return b, nil
	}
	f, err := r.blobs.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) != size {
		return nil, fmt.Errorf("stored size %d, record says %d", len(body), size)
	}
	r.manifestCache.put(d, body)
	return body, nil
}

// deleteManifest serves DELETE /v2/<repo>/manifests/<reference>: by digest
// the manifest leaves the repository with its tags; by tag only the tag goes.
func (r *Registry) deleteManifest(w http.ResponseWriter, req *http.Request, rt *call) error {
	if err := checkReference(rt.ref); err != nil {
		return err
	}
	err := r.store.Update(req.Context(), func(tx store.Tx) error {
		res, err := r.resolveManifest(tx, rt)
		if err != nil {
			return err
		}
		if res.tag != nil {
			if !res.repo.Attrs.deletable() || !res.tag.Attrs.deletable() {
				return newError(errDeleteDisabled)
			}
			return tx.Delete(r.tables.tags, tagKey(rt.repo, rt.ref))
		}
		_, err = r.removeManifest(tx, rt.repo, res.repo, res.digest, res.rec)
		return err
	})
	if err != nil {
		return err
	}
	accepted(w)
	return nil
}

// removeManifest deletes manifest d of repo and the tags that point at it,
// unless an attribute forbids it, and returns the tags it deleted.
func (r *Registry) removeManifest(tx store.Tx, repo string, rr repositoryRecord, d string, m manifestRecord) ([]string, error) {
	if !rr.Attrs.deletable() || !m.Attrs.deletable() {
		return nil, newError(errDeleteDisabled)
	}
	var tags []string
	var derr error
	prefix := tagKey(repo, "")
	err := tx.Scan(r.tables.tags, prefix, func(k string, v []byte) bool {
		var t tagRecord
		if derr = json.Unmarshal(v, &t); derr != nil {
			return false
		}
		if t.Digest == d {
			if !t.Attrs.deletable() {
				derr = errorf(errDeleteDisabled, "tag %s is delete-disabled", strings.TrimPrefix(k, prefix))
				return false
			}
			tags = append(tags, strings.TrimPrefix(k, prefix))
		}
		return true
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, err
	}
	for _, t := range tags {
		if err := tx.Delete(r.tables.tags, tagKey(repo, t)); err != nil {
			return nil, err
		}
	}
	if m.Subject != "" {
		if err := tx.Delete(r.tables.referrers, referrerKey(repo, m.Subject, d)); err != nil {
			return nil, err
		}
	}
	return tags, tx.Delete(r.tables.manifests, repoKey(repo, d))
}
