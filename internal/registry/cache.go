package registry

import (
	"container/list"
	"sync"

	"github.com/opencontainers/go-digest"
)

// Caches of immutable things, so that the hot paths (manifest GET, every
// request's token check) do no repeated work. Both are bounded.

// manifestCacheBytes bounds the manifest cache.
const manifestCacheBytes = 32 << 20

// byteCache is a least-recently-used cache of content by digest. Content is
// immutable, so entries never go stale; a deleted manifest's entry is only
// reachable through a record that no longer exists.
type byteCache struct {
	mu    sync.Mutex
	size  int
	order *list.List // front: most recent; values are *cacheEntry
	items map[digest.Digest]*list.Element
}

type cacheEntry struct {
	d digest.Digest
	b []byte
}

func (c *byteCache) get(d digest.Digest) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[d]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).b, true
}

func (c *byteCache) put(d digest.Digest, b []byte) {
	if len(b) > manifestCacheBytes/16 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items = map[digest.Digest]*list.Element{}
		c.order = list.New()
	}
	if _, ok := c.items[d]; ok {
		return
	}
	c.items[d] = c.order.PushFront(&cacheEntry{d, b})
	c.size += len(b)
	for c.size > manifestCacheBytes {
		old := c.order.Remove(c.order.Back()).(*cacheEntry)
		delete(c.items, old.d)
		c.size -= len(old.b)
	}
}

// tokenCacheSize bounds the token cache.
const tokenCacheSize = 4096

// tokenCache remembers tokens whose signature verified, so that a client
// reusing its access token costs a map lookup instead of an RSA
// verification. Expiry and not-before are still checked on every use.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]*tokenClaims
}

func (c *tokenCache) get(tok string) *tokenClaims {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[tok]
}

func (c *tokenCache) put(tok string, claims *tokenClaims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= tokenCacheSize {
		c.m = make(map[string]*tokenClaims) // simple and bounded: start over
	}
	c.m[tok] = claims
}
