package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/store"
)

// The OCI API's listings: tags, the catalog and referrers.

// page is a listing's paging parameters: at most n items (n < 0: all) that
// sort after last.
type page struct {
	n    int
	last string
}

// parsePage reads n and last from a query.
func parsePage(q url.Values) (page, error) {
	p := page{n: -1, last: q.Get("last")}
	if s := q.Get("n"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return p, errorf(errPaginationInvalid, "invalid n %q", s)
		}
		p.n = n
	}
	return p, nil
}

// full reports whether a page holding have items is full.
func (p page) full(have int) bool { return p.n >= 0 && have >= p.n }

// setNextLink sends the host-relative Link to the page after the one that
// ended with last, as OCI and the Azure SDKs expect.
func setNextLink(w http.ResponseWriter, path string, q url.Values) {
	w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, path, q.Encode()))
}

// tagListWire is the body of GET /v2/<repo>/tags/list.
type tagListWire struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// listTags serves GET /v2/<repo>/tags/list[?n=&last=]: tags in lexical order,
// after last (exclusive), at most n, with a Link to the next page when more
// remain. Tags with listing disabled are left out.
func (r *Registry) listTags(w http.ResponseWriter, req *http.Request, rt *call) error {
	p, err := parsePage(req.URL.Query())
	if err != nil {
		return err
	}
	list := tagListWire{Name: rt.repo, Tags: []string{}}
	more := false
	err = r.store.View(req.Context(), func(tx store.Tx) error {
		if _, found, err := r.repository(tx, rt.repo); err != nil || !found {
			if err == nil {
				err = errorf(errNameUnknown, "repository %q is not found", rt.repo).withDetail(map[string]string{"name": rt.repo})
			}
			return err
		}
		if p.n == 0 {
			return nil
		}
		prefix := tagKey(rt.repo, "")
		var derr error
		err := tx.Scan(r.tables.tags, prefix, func(key string, v []byte) bool {
			tag := key[len(prefix):]
			if tag <= p.last {
				return true
			}
			var t tagRecord
			if derr = json.Unmarshal(v, &t); derr != nil {
				return false
			}
			if t.Attrs.NoList {
				return true
			}
			if p.full(len(list.Tags)) {
				more = true
				return false
			}
			list.Tags = append(list.Tags, tag)
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
	if more {
		setNextLink(w, "/v2/"+rt.repo+"/tags/list", url.Values{"last": {list.Tags[len(list.Tags)-1]}, "n": {strconv.Itoa(p.n)}})
	}
	return writeJSON(w, http.StatusOK, list)
}

// catalogWire is the body of GET /v2/_catalog and GET /acr/v1/_catalog.
type catalogWire struct {
	Repositories []string `json:"repositories"`
}

// repositoryNames returns a page of the registry's listable repositories and
// whether more follow.
func (r *Registry) repositoryNames(tx store.Tx, p page) ([]string, bool, error) {
	names := []string{}
	more := false
	if p.n == 0 {
		return names, false, nil
	}
	var derr error
	err := tx.Scan(r.tables.repositories, "", func(name string, v []byte) bool {
		if name <= p.last {
			return true
		}
		var rec repositoryRecord
		if derr = json.Unmarshal(v, &rec); derr != nil {
			return false
		}
		if rec.Attrs.NoList {
			return true
		}
		if p.full(len(names)) {
			more = true
			return false
		}
		names = append(names, name)
		return true
	})
	if err == nil {
		err = derr
	}
	return names, more, err
}

// listCatalog serves GET /v2/_catalog[?n=&last=] and GET
// /acr/v1/_catalog[?n=&last=], which answer alike.
func (r *Registry) listCatalog(w http.ResponseWriter, req *http.Request, rt *call) error {
	p, err := parsePage(req.URL.Query())
	if err != nil {
		return err
	}
	var (
		names []string
		more  bool
	)
	err = r.store.View(req.Context(), func(tx store.Tx) (err error) {
		names, more, err = r.repositoryNames(tx, p)
		return err
	})
	if err != nil {
		return err
	}
	if more {
		path := "/v2/_catalog"
		if rt.name == acrCatalog {
			path = "/acr/v1/_catalog"
		}
		setNextLink(w, path, url.Values{"last": {names[len(names)-1]}, "n": {strconv.Itoa(p.n)}})
	}
	return writeJSON(w, http.StatusOK, catalogWire{Repositories: names})
}

// indexWire is an OCI image index, the body of the referrers API.
type indexWire struct {
	SchemaVersion int              `json:"schemaVersion"`
	MediaType     string           `json:"mediaType"`
	Manifests     []descriptorWire `json:"manifests"`
}

// listReferrers serves GET /v2/<repo>/referrers/<digest>[?artifactType=]:
// the manifests of the repository whose subject is digest, as an index. An
// unknown subject has no referrers, which is not an error; a read-disabled
// repository is DENIED.
func (r *Registry) listReferrers(w http.ResponseWriter, req *http.Request, rt *call) error {
	subject, err := parseDigest(rt.ref)
	if err != nil {
		return err
	}
	q := req.URL.Query()
	artifactType := q.Get("artifactType")
	index := indexWire{SchemaVersion: 2, MediaType: mediaTypeOCIIndex, Manifests: []descriptorWire{}}
	err = r.store.View(req.Context(), func(tx store.Tx) error {
		repo, _, err := r.repository(tx, rt.repo)
		if err != nil {
			return err
		}
		if repo.Attrs.NoRead {
			return newError(errDenied)
		}
		prefix := referrerKey(rt.repo, subject.String(), "")
		keys, err := scanKeys(tx, r.tables.referrers, prefix)
		if err != nil {
			return err
		}
		for _, k := range keys {
			d := strings.TrimPrefix(k, prefix)
			var m manifestRecord
			found, err := getJSON(tx, r.tables.manifests, repoKey(rt.repo, d), &m)
			if err != nil {
				return err
			}
			if !found || m.Attrs.NoList || (artifactType != "" && m.ArtifactType != artifactType) {
				continue
			}
			index.Manifests = append(index.Manifests, descriptorWire{
				MediaType: m.MediaType, Digest: digestOf(d), Size: m.Size,
				ArtifactType: m.ArtifactType, Annotations: m.Annotations,
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if artifactType != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	b, err := json.Marshal(index)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", mediaTypeOCIIndex)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}
