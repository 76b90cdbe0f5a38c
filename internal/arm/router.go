package arm

import (
	"errors"
	"net/url"
	"sort"
	"strings"
)

var errMethod = errors.New("method not allowed")

type compiledRoute struct {
	Route
	segs  []string // literal (lower-cased) or "{name}"
	allow string
}

func compile(rt Route) *compiledRoute {
	c := &compiledRoute{Route: rt}
	for _, s := range splitPath(rt.Pattern) {
		if !strings.HasPrefix(s, "{") {
			s = strings.ToLower(s)
		}
		c.segs = append(c.segs, s)
	}
	var ms []string
	for m := range rt.Methods {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	c.allow = strings.Join(ms, ", ")
	return c
}

// match compares escaped path segments with the pattern; literals compare
// case-insensitively, variables capture the unescaped segment.
func (c *compiledRoute) match(segs []string) (map[string]string, bool) {
	if len(segs) != len(c.segs) {
		return nil, false
	}
	var params map[string]string
	for i, p := range c.segs {
		s, err := url.PathUnescape(segs[i])
		if err != nil {
			return nil, false
		}
		if strings.HasPrefix(p, "{") {
			if s == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[p[1:len(p)-1]] = s
			continue
		}
		if strings.ToLower(s) != p {
			return nil, false
		}
	}
	return params, true
}

// splitPath splits a path into segments, ignoring empty ones (so
// "//metadata/endpoints" and "/metadata/endpoints/" match the same route).
func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
