package registry

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/store"
)

// tagListWire is the body of GET /v2/<repo>/tags/list.
type tagListWire struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// listTags serves GET /v2/<repo>/tags/list[?n=&last=]: tags in lexical order,
// after last (exclusive), at most n, with a Link to the next page when more
// remain.
func (r *Registry) listTags(w http.ResponseWriter, req *http.Request, rt route) error {
	q := req.URL.Query()
	limit := -1
	if s := q.Get("n"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return errorf(errPaginationInvalid, "invalid n %q", s)
		}
		limit = n
	}
	last := q.Get("last")
	list := tagListWire{Name: rt.repo, Tags: []string{}}
	more := false
	err := r.store.View(req.Context(), func(tx store.Tx) error {
		if _, err := tx.Get(r.tables.repositories, rt.repo); errors.Is(err, store.ErrNotFound) {
			return errorf(errNameUnknown, "repository %q is not found", rt.repo).withDetail(map[string]string{"name": rt.repo})
		} else if err != nil {
			return err
		}
		if limit == 0 {
			return nil
		}
		prefix := tagKey(rt.repo, "")
		return tx.Scan(r.tables.tags, prefix, func(key string, _ []byte) bool {
			tag := strings.TrimPrefix(key, prefix)
			if tag <= last {
				return true
			}
			if limit >= 0 && len(list.Tags) == limit {
				more = true
				return false
			}
			list.Tags = append(list.Tags, tag)
			return true
		})
	})
	if err != nil {
		return err
	}
	h := w.Header()
	if more {
		next := url.Values{"last": {list.Tags[len(list.Tags)-1]}, "n": {strconv.Itoa(limit)}}
		h.Set("Link", fmt.Sprintf(`</v2/%s/tags/list?%s>; rel="next"`, rt.repo, next.Encode()))
	}
	return writeJSON(w, http.StatusOK, list)
}
