package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// DefaultCacheSize is how many verified tokens a Verifier remembers when
// Config.CacheSize is zero.
const DefaultCacheSize = 10_000

// tokenCache remembers verified tokens, keyed by the SHA-256 of the raw
// token (the token itself is never kept), until they expire. It holds at
// most max entries, dropping an arbitrary one when full, and forgets
// everything whenever the key set's generation changes, so rotation and
// revocation hold as if nothing were cached.
type tokenCache struct {
	max int

	mu         sync.RWMutex
	generation uint64
	entries    map[[sha256.Size]byte]cachedToken
}

type cachedToken struct {
	id     *Identity
	expiry time.Time
}

func newTokenCache(max int) *tokenCache {
	if max <= 0 {
		return nil
	}
	return &tokenCache{max: max, entries: make(map[[sha256.Size]byte]cachedToken)}
}

// get returns the identity of a token verified under key-set generation
// gen and not expired at now.
func (c *tokenCache) get(sum [sha256.Size]byte, gen uint64, now time.Time) (*Identity, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	e, ok := c.entries[sum]
	current := c.generation == gen
	c.mu.RUnlock()
	if !ok || !current || now.After(e.expiry) {
		return nil, false
	}
	return e.id, true
}

// put remembers id for the token until expiry, flushing the cache first if
// the key set changed since the last put.
func (c *tokenCache) put(sum [sha256.Size]byte, gen uint64, id *Identity, expiry time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case gen < c.generation:
		return // verified with keys that have changed since
	case gen > c.generation:
		clear(c.entries)
		c.generation = gen
	}
	if _, ok := c.entries[sum]; !ok && len(c.entries) >= c.max {
		for k := range c.entries { // an arbitrary entry: Go randomizes map order
			delete(c.entries, k)
			break
		}
	}
	c.entries[sum] = cachedToken{id: id, expiry: expiry}
}
