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
	segs  []string // literal (lower-cased), "{name}" or one "{name*}"
	star  int      // index of the {name*} segment, or -1
	allow string
}

func compile(rt Route) *compiledRoute {
	c := &compiledRoute{Route: rt, star: -1}
	for i, s := range splitPath(rt.Pattern) {
		if !strings.HasPrefix(s, "{") {
			s = strings.ToLower(s)
		} else if strings.HasSuffix(s, "*}") {
			if c.star >= 0 {
				panic("arm: more than one {name*} in " + rt.Pattern)
			}
			c.star = i
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
// case-insensitively, variables capture the unescaped segment, a {name*}
// variable the one or more segments between the pattern's literal prefix
// and suffix, as "/a/b" (a leading slash, unescaped segments).
func (c *compiledRoute) match(segs []string) (map[string]string, bool) {
	if c.star >= 0 {
		return c.matchStar(segs)
	}
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

func (c *compiledRoute) matchStar(segs []string) (map[string]string, bool) {
	tail := len(c.segs) - c.star - 1
	n := len(segs) - c.star - tail // segments the star takes
	if n < 1 {
		return nil, false
	}
	head := &compiledRoute{segs: c.segs[:c.star], star: -1}
	suffix := &compiledRoute{segs: c.segs[c.star+1:], star: -1}
	hp, ok := head.match(segs[:c.star])
	if !ok {
		return nil, false
	}
	tp, ok := suffix.match(segs[c.star+n:])
	if !ok {
		return nil, false
	}
	params := map[string]string{}
	for k, v := range hp {
		params[k] = v
	}
	for k, v := range tp {
		params[k] = v
	}
	var b strings.Builder
	for _, s := range segs[c.star : c.star+n] {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, false
		}
		b.WriteString("/" + u)
	}
	p := c.segs[c.star]
	params[p[1:len(p)-2]] = b.String()
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
