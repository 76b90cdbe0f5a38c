package arm

import (
	"net/url"
)

// skipTokenParam is the query parameter of nextLinks (ARM's name).
const skipTokenParam = "$skipToken"

// Page returns the page of items (ordered by key, ascending, as the caller
// sorted them) that r asks for, and the nextLink of the page after it ("" on
// the last page). The nextLink is absolute, carries r's query (api-version
// included) and a $skipToken naming the last key served, so pages stay
// consistent while items come and go.
func Page[T any](items []T, r *Request, size int, key func(T) string) ([]T, string) {
	q := r.URL.Query()
	start := 0
	if tok := q.Get(skipTokenParam); tok != "" {
		start = len(items)
		for i, it := range items {
			if key(it) > tok {
				start = i
				break
			}
		}
	}
	end := min(start+size, len(items))
	page := items[start:end]
	if end >= len(items) {
		return page, ""
	}
	q.Set(skipTokenParam, key(items[end-1]))
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	return page, r.Base + u.String()
}
