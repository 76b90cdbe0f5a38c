package registry

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/store"
)

// ACR's data-plane API, /acr/v1/ (acr.md §1): repository, tag and manifest
// properties, their changeable attributes, listings and deletes.

// Wire structs (DP 2021-07-01 definitions).

type changeableAttributesWire struct {
	DeleteEnabled bool `json:"deleteEnabled"`
	WriteEnabled  bool `json:"writeEnabled"`
	ListEnabled   bool `json:"listEnabled"`
	ReadEnabled   bool `json:"readEnabled"`
}

// attributesPatchWire is a PATCH body: the attributes to change.
type attributesPatchWire struct {
	DeleteEnabled *bool `json:"deleteEnabled"`
	WriteEnabled  *bool `json:"writeEnabled"`
	ListEnabled   *bool `json:"listEnabled"`
	ReadEnabled   *bool `json:"readEnabled"`
}

type repositoryWire struct {
	Registry             string                   `json:"registry"`
	ImageName            string                   `json:"imageName"`
	CreatedTime          time.Time                `json:"createdTime"`
	LastUpdateTime       time.Time                `json:"lastUpdateTime"`
	ManifestCount        int                      `json:"manifestCount"`
	TagCount             int                      `json:"tagCount"`
	ChangeableAttributes changeableAttributesWire `json:"changeableAttributes"`
}

type acrTagWire struct {
	Name                 string                   `json:"name"`
	Digest               string                   `json:"digest"`
	CreatedTime          time.Time                `json:"createdTime"`
	LastUpdateTime       time.Time                `json:"lastUpdateTime"`
	Signed               bool                     `json:"signed"`
	ChangeableAttributes changeableAttributesWire `json:"changeableAttributes"`
}

type acrTagListWire struct {
	Registry  string       `json:"registry"`
	ImageName string       `json:"imageName"`
	Tags      []acrTagWire `json:"tags"`
}

type acrTagAttributesWire struct {
	Registry  string     `json:"registry"`
	ImageName string     `json:"imageName"`
	Tag       acrTagWire `json:"tag"`
}

type acrManifestWire struct {
	Digest               string                   `json:"digest"`
	ImageSize            int64                    `json:"imageSize"`
	CreatedTime          time.Time                `json:"createdTime"`
	LastUpdateTime       time.Time                `json:"lastUpdateTime"`
	Architecture         string                   `json:"architecture,omitempty"`
	OS                   string                   `json:"os,omitempty"`
	References           []platformRef            `json:"references,omitempty"`
	ConfigMediaType      string                   `json:"configMediaType,omitempty"`
	MediaType            string                   `json:"mediaType"`
	Tags                 []string                 `json:"tags,omitempty"`
	ChangeableAttributes changeableAttributesWire `json:"changeableAttributes"`
}

type acrManifestListWire struct {
	Registry  string            `json:"registry"`
	ImageName string            `json:"imageName"`
	Manifests []acrManifestWire `json:"manifests"`
}

type acrManifestAttributesWire struct {
	Registry  string          `json:"registry"`
	ImageName string          `json:"imageName"`
	Manifest  acrManifestWire `json:"manifest"`
}

type deletedRepositoryWire struct {
	ManifestsDeleted []string `json:"manifestsDeleted"`
	TagsDeleted      []string `json:"tagsDeleted"`
}

func attributesWire(a attributes) changeableAttributesWire {
	return changeableAttributesWire{DeleteEnabled: !a.NoDelete, WriteEnabled: !a.NoWrite, ListEnabled: !a.NoList, ReadEnabled: !a.NoRead}
}

// apply changes a by the attributes the patch sets.
func (p attributesPatchWire) apply(a *attributes) {
	set := func(dst *bool, enabled *bool) {
		if enabled != nil {
			*dst = !*enabled
		}
	}
	set(&a.NoDelete, p.DeleteEnabled)
	set(&a.NoWrite, p.WriteEnabled)
	set(&a.NoList, p.ListEnabled)
	set(&a.NoRead, p.ReadEnabled)
}

// readPatch decodes a PATCH body.
func readPatch(req *http.Request) (attributesPatchWire, error) {
	var p attributesPatchWire
	b, err := io.ReadAll(io.LimitReader(req.Body, maxFormSize))
	if err != nil {
		return p, errorf(errUnsupported, "reading request body failed").because(err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, errorf(errUnsupported, "the request body is not a changeable-attributes object").because(err)
	}
	return p, nil
}

func nameUnknown(repo string) error {
	return errorf(errNameUnknown, "repository %q is not found", repo).withDetail(map[string]string{"name": repo})
}

// mustRepository reads a repository record or fails with NAME_UNKNOWN.
func (r *Registry) mustRepository(tx store.Tx, repo string) (repositoryRecord, error) {
	rec, found, err := r.repository(tx, repo)
	if err == nil && !found {
		err = nameUnknown(repo)
	}
	return rec, err
}

// repositoryWire builds a repository's properties.
func (r *Registry) repositoryWire(tx store.Tx, repo string, rec repositoryRecord) (repositoryWire, error) {
	out := repositoryWire{
		Registry: r.loginServer, ImageName: repo, CreatedTime: rec.Created, LastUpdateTime: rec.Updated,
		ChangeableAttributes: attributesWire(rec.Attrs),
	}
	count := func(table, prefix string, n *int) error {
		return tx.Scan(table, prefix, func(string, []byte) bool { *n++; return true })
	}
	if err := count(r.tables.manifests, repoKey(repo, ""), &out.ManifestCount); err != nil {
		return out, err
	}
	return out, count(r.tables.tags, tagKey(repo, ""), &out.TagCount)
}

// acrGetRepository serves GET /acr/v1/<repo>.
func (r *Registry) acrGetRepository(w http.ResponseWriter, req *http.Request, rt *call) error {
	var out repositoryWire
	err := r.store.View(req.Context(), func(tx store.Tx) error {
		rec, err := r.mustRepository(tx, rt.repo)
		if err != nil {
			return err
		}
		out, err = r.repositoryWire(tx, rt.repo, rec)
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// acrPatchRepository serves PATCH /acr/v1/<repo>.
func (r *Registry) acrPatchRepository(w http.ResponseWriter, req *http.Request, rt *call) error {
	p, err := readPatch(req)
	if err != nil {
		return err
	}
	var out repositoryWire
	err = r.store.Update(req.Context(), func(tx store.Tx) error {
		rec, err := r.mustRepository(tx, rt.repo)
		if err != nil {
			return err
		}
		p.apply(&rec.Attrs)
		if err := putJSON(tx, r.tables.repositories, rt.repo, rec); err != nil {
			return err
		}
		out, err = r.repositoryWire(tx, rt.repo, rec)
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// acrDeleteRepository serves DELETE /acr/v1/<repo>: the repository goes with
// its manifests, tags and blob links, unless an attribute forbids deleting
// any of them. Content is left to garbage collection.
func (r *Registry) acrDeleteRepository(w http.ResponseWriter, req *http.Request, rt *call) error {
	out := deletedRepositoryWire{ManifestsDeleted: []string{}, TagsDeleted: []string{}}
	err := r.store.Update(req.Context(), func(tx store.Tx) error {
		rec, err := r.mustRepository(tx, rt.repo)
		if err != nil {
			return err
		}
		if !rec.Attrs.deletable() {
			return newError(errDeleteDisabled)
		}
		var ms []string
		var recs []manifestRecord
		var derr error
		prefix := repoKey(rt.repo, "")
		err = tx.Scan(r.tables.manifests, prefix, func(k string, v []byte) bool {
			var m manifestRecord
			if derr = json.Unmarshal(v, &m); derr != nil {
				return false
			}
			ms, recs = append(ms, k[len(prefix):]), append(recs, m)
			return true
		})
		if err == nil {
			err = derr
		}
		if err != nil {
			return err
		}
		for i, d := range ms {
			tags, err := r.removeManifest(tx, rt.repo, rec, d, recs[i])
			if err != nil {
				return err
			}
			out.ManifestsDeleted = append(out.ManifestsDeleted, d)
			out.TagsDeleted = append(out.TagsDeleted, tags...)
		}
		// Tags of missing manifests (none expected), links, referrers.
		for _, t := range []string{r.tables.tags, r.tables.blobs, r.tables.referrers} {
			p := repoKey(rt.repo, "")
			if t == r.tables.tags {
				p = tagKey(rt.repo, "")
			}
			keys, err := scanKeys(tx, t, p)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if t == r.tables.tags {
					out.TagsDeleted = append(out.TagsDeleted, k[len(p):])
				}
				if err := tx.Delete(t, k); err != nil {
					return err
				}
			}
		}
		return tx.Delete(r.tables.repositories, rt.repo)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, out)
}

// listQuery is an /acr/v1 listing's parameters.
type listQuery struct {
	page
	orderBy string // "", "timedesc" or "timeasc"
	digest  string // _tags only: tags of this manifest
}

func parseListQuery(q url.Values) (listQuery, error) {
	p, err := parsePage(q)
	if err != nil {
		return listQuery{}, err
	}
	lq := listQuery{page: p, orderBy: strings.ToLower(q.Get("orderby")), digest: q.Get("digest")}
	switch lq.orderBy {
	case "", "none", "timedesc", "timeasc":
	default:
		return lq, errorf(errUnsupported, "orderby must be timedesc, timeasc or none, not %q", q.Get("orderby"))
	}
	if lq.orderBy == "none" {
		lq.orderBy = ""
	}
	return lq, nil
}

// listed is one item of an /acr/v1 listing: its name (tag or digest), when
// it last changed, and its wire form.
type listed[T any] struct {
	name    string
	updated time.Time
	wire    T
}

// paginate orders items (given in name order) as lq asks and cuts the page:
// with no order, items after last by name; with a time order, items after
// the one named last. It returns the page and whether more follow.
func paginate[T any](items []listed[T], lq listQuery) ([]T, bool) {
	start := 0
	switch lq.orderBy {
	case "":
		start = len(items)
		for i, it := range items {
			if it.name > lq.last {
				start = i
				break
			}
		}
	default:
		slices.SortStableFunc(items, func(a, b listed[T]) int {
			c := a.updated.Compare(b.updated)
			if lq.orderBy == "timedesc" {
				c = -c
			}
			return c
		})
		if lq.last != "" {
			for i, it := range items {
				if it.name == lq.last {
					start = i + 1
					break
				}
			}
		}
	}
	items = items[start:]
	more := false
	if lq.n >= 0 && len(items) > lq.n {
		items, more = items[:lq.n], true
	}
	out := make([]T, len(items))
	for i, it := range items {
		out[i] = it.wire
	}
	return out, more
}

// nextLink sends the Link to the page after last of an /acr/v1 listing.
func nextLink(w http.ResponseWriter, path string, lq listQuery, last string) {
	q := url.Values{"last": {last}, "n": {strconv.Itoa(lq.n)}, "orderby": {lq.orderBy}}
	if lq.digest != "" {
		q.Set("digest", lq.digest)
	}
	setNextLink(w, path, q)
}

func tagWire(name string, t tagRecord) acrTagWire {
	return acrTagWire{Name: name, Digest: t.Digest, CreatedTime: t.Created, LastUpdateTime: t.Updated, ChangeableAttributes: attributesWire(t.Attrs)}
}

// acrListTags serves GET /acr/v1/<repo>/_tags[?n=&last=&orderby=&digest=].
func (r *Registry) acrListTags(w http.ResponseWriter, req *http.Request, rt *call) error {
	lq, err := parseListQuery(req.URL.Query())
	if err != nil {
		return err
	}
	var items []listed[acrTagWire]
	err = r.store.View(req.Context(), func(tx store.Tx) error {
		if _, err := r.mustRepository(tx, rt.repo); err != nil {
			return err
		}
		prefix := tagKey(rt.repo, "")
		var derr error
		err := tx.Scan(r.tables.tags, prefix, func(k string, v []byte) bool {
			var t tagRecord
			if derr = json.Unmarshal(v, &t); derr != nil {
				return false
			}
			if !t.Attrs.NoList && (lq.digest == "" || t.Digest == lq.digest) {
				name := k[len(prefix):]
				items = append(items, listed[acrTagWire]{name, t.Updated, tagWire(name, t)})
			}
			return true
		})
		if err == nil {
			err = derr
		}
		return err
	})
	if err != nil {
		return err
	}
	tags, more := paginate(items, lq)
	if more {
		nextLink(w, "/acr/v1/"+rt.repo+"/_tags", lq, tags[len(tags)-1].Name)
	}
	return writeJSON(w, http.StatusOK, acrTagListWire{Registry: r.loginServer, ImageName: rt.repo, Tags: tags})
}

// tagOf reads the tag a request addresses or fails with TAG_UNKNOWN.
func (r *Registry) tagOf(tx store.Tx, rt *call) (repositoryRecord, tagRecord, error) {
	var t tagRecord
	rec, err := r.mustRepository(tx, rt.repo)
	if err != nil {
		return rec, t, err
	}
	if !validTag(rt.ref) {
		return rec, t, errorf(errTagInvalid, "invalid tag %q", rt.ref)
	}
	found, err := getJSON(tx, r.tables.tags, tagKey(rt.repo, rt.ref), &t)
	if err == nil && !found {
		err = errorf(errTagUnknown, "the specified tag does not exist").withDetail(map[string]string{"tag": rt.ref})
	}
	return rec, t, err
}

// acrGetTag serves GET /acr/v1/<repo>/_tags/<tag>.
func (r *Registry) acrGetTag(w http.ResponseWriter, req *http.Request, rt *call) error {
	var t tagRecord
	err := r.store.View(req.Context(), func(tx store.Tx) (err error) {
		_, t, err = r.tagOf(tx, rt)
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, acrTagAttributesWire{Registry: r.loginServer, ImageName: rt.repo, Tag: tagWire(rt.ref, t)})
}

// acrPatchTag serves PATCH /acr/v1/<repo>/_tags/<tag>.
func (r *Registry) acrPatchTag(w http.ResponseWriter, req *http.Request, rt *call) error {
	p, err := readPatch(req)
	if err != nil {
		return err
	}
	var t tagRecord
	err = r.store.Update(req.Context(), func(tx store.Tx) (err error) {
		if _, t, err = r.tagOf(tx, rt); err != nil {
			return err
		}
		p.apply(&t.Attrs)
		return putJSON(tx, r.tables.tags, tagKey(rt.repo, rt.ref), t)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, acrTagAttributesWire{Registry: r.loginServer, ImageName: rt.repo, Tag: tagWire(rt.ref, t)})
}

// acrDeleteTag serves DELETE /acr/v1/<repo>/_tags/<tag>.
func (r *Registry) acrDeleteTag(w http.ResponseWriter, req *http.Request, rt *call) error {
	err := r.store.Update(req.Context(), func(tx store.Tx) error {
		rec, t, err := r.tagOf(tx, rt)
		if err != nil {
			return err
		}
		if !rec.Attrs.deletable() || !t.Attrs.deletable() {
			return newError(errDeleteDisabled)
		}
		return tx.Delete(r.tables.tags, tagKey(rt.repo, rt.ref))
	})
	if err != nil {
		return err
	}
	accepted(w)
	return nil
}

func manifestWireOf(d string, m manifestRecord, tags []string) acrManifestWire {
	return acrManifestWire{
		Digest: d, ImageSize: m.ImageSize, CreatedTime: m.Created, LastUpdateTime: m.lastUpdate(),
		Architecture: m.Architecture, OS: m.OS, References: m.Manifests, ConfigMediaType: m.ConfigMediaType,
		MediaType: m.MediaType, Tags: tags, ChangeableAttributes: attributesWire(m.Attrs),
	}
}

func (m manifestRecord) lastUpdate() time.Time {
	if m.Updated.IsZero() {
		return m.Created
	}
	return m.Updated
}

// tagsByDigest returns the tags of repo, by the digest they point at.
func (r *Registry) tagsByDigest(tx store.Tx, repo string) (map[string][]string, error) {
	out := map[string][]string{}
	prefix := tagKey(repo, "")
	var derr error
	err := tx.Scan(r.tables.tags, prefix, func(k string, v []byte) bool {
		var t tagRecord
		if derr = json.Unmarshal(v, &t); derr != nil {
			return false
		}
		out[t.Digest] = append(out[t.Digest], k[len(prefix):])
		return true
	})
	if err == nil {
		err = derr
	}
	return out, err
}

// acrListManifests serves GET /acr/v1/<repo>/_manifests[?n=&last=&orderby=].
func (r *Registry) acrListManifests(w http.ResponseWriter, req *http.Request, rt *call) error {
	lq, err := parseListQuery(req.URL.Query())
	if err != nil {
		return err
	}
	var items []listed[acrManifestWire]
	err = r.store.View(req.Context(), func(tx store.Tx) error {
		if _, err := r.mustRepository(tx, rt.repo); err != nil {
			return err
		}
		tags, err := r.tagsByDigest(tx, rt.repo)
		if err != nil {
			return err
		}
		prefix := repoKey(rt.repo, "")
		var derr error
		err = tx.Scan(r.tables.manifests, prefix, func(k string, v []byte) bool {
			var m manifestRecord
			if derr = json.Unmarshal(v, &m); derr != nil {
				return false
			}
			if !m.Attrs.NoList {
				d := k[len(prefix):]
				items = append(items, listed[acrManifestWire]{d, m.lastUpdate(), manifestWireOf(d, m, tags[d])})
			}
			return true
		})
		if err == nil {
			err = derr
		}
		return err
	})
	if err != nil {
		return err
	}
	ms, more := paginate(items, lq)
	if more {
		nextLink(w, "/acr/v1/"+rt.repo+"/_manifests", lq, ms[len(ms)-1].Digest)
	}
	return writeJSON(w, http.StatusOK, acrManifestListWire{Registry: r.loginServer, ImageName: rt.repo, Manifests: ms})
}

// manifestOf reads the manifest an /acr/v1 request addresses, by digest or
// tag, with its tags.
func (r *Registry) manifestOf(tx store.Tx, rt *call) (string, manifestRecord, []string, error) {
	if err := checkReference(rt.ref); err != nil {
		return "", manifestRecord{}, nil, err
	}
	res, err := r.resolveManifest(tx, rt)
	if err != nil {
		return "", manifestRecord{}, nil, err
	}
	tags, err := r.tagsByDigest(tx, rt.repo)
	return res.digest, res.rec, tags[res.digest], err
}

// acrGetManifest serves GET /acr/v1/<repo>/_manifests/<digest>.
func (r *Registry) acrGetManifest(w http.ResponseWriter, req *http.Request, rt *call) error {
	var out acrManifestAttributesWire
	err := r.store.View(req.Context(), func(tx store.Tx) error {
		d, m, tags, err := r.manifestOf(tx, rt)
		out = acrManifestAttributesWire{Registry: r.loginServer, ImageName: rt.repo, Manifest: manifestWireOf(d, m, tags)}
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// acrPatchManifest serves PATCH /acr/v1/<repo>/_manifests/<digest>.
func (r *Registry) acrPatchManifest(w http.ResponseWriter, req *http.Request, rt *call) error {
	p, err := readPatch(req)
	if err != nil {
		return err
	}
	var out acrManifestAttributesWire
	err = r.store.Update(req.Context(), func(tx store.Tx) error {
		d, m, tags, err := r.manifestOf(tx, rt)
		if err != nil {
			return err
		}
		p.apply(&m.Attrs)
		out = acrManifestAttributesWire{Registry: r.loginServer, ImageName: rt.repo, Manifest: manifestWireOf(d, m, tags)}
		return putJSON(tx, r.tables.manifests, repoKey(rt.repo, d), m)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}
