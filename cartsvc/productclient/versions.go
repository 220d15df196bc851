package productclient

import "github.com/google/uuid"

// ObserveVersion records that version of the product exists (or, for a
// deletion, that the product is gone at version). From then on no entry
// older than version is served or cached, including the result of a fetch
// already in flight. The event consumer calls it for every product event.
//
// The marks are bounded by Config.MaxEntries; when a mark must be forgotten
// to make room, the product's cache entry is dropped with it.
func (c *Client) ObserveVersion(productID uuid.UUID, version int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.raiseMark(productID, version)
}

// ObserveProduct is ObserveVersion for a product's full state at its
// version, as a ProductChanged event carries it: the product's mark rises
// to p.Version, and p goes into the cache as if just fetched, unless the
// mark is already newer (then it is ignored). So the replica that applied
// the event answers the next lookups without asking productsvc.
func (c *Client) ObserveProduct(p Product) {
	if p.Missing {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.raiseMark(p.ID, p.Version) && c.versions[p.ID] > p.Version {
		return
	}
	c.cache.SetWithTTL(key(p.ID), cached{Product: p, fetched: c.now()}, 1, c.maxStale)
}

// raiseMark raises the product's mark to version and drops an older cache
// entry; it reports whether the mark rose. c.mu is held.
func (c *Client) raiseMark(productID uuid.UUID, version int64) bool {
	prev, known := c.versions[productID]
	if known && version <= prev {
		return false
	}
	if !known && len(c.versions) >= c.maxVersions {
		for id := range c.versions {
			delete(c.versions, id)
			c.cache.Del(key(id))
			break
		}
	}
	c.versions[productID] = version
	if e, ok := c.cache.Get(key(productID)); ok && !e.Missing && e.Version < version {
		c.cache.Del(key(productID))
	}
	return true
}

// ObservedVersion returns the product's high-water mark: the highest
// version passed to ObserveVersion (0 if none, or forgotten).
func (c *Client) ObservedVersion(productID uuid.UUID) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.versions[productID]
}

// usable reports whether p is at least version min and the high-water
// mark. A missing product is final, so always usable.
func (c *Client) usable(p Product, min int64) bool {
	if p.Missing {
		return true
	}
	c.mu.Lock()
	mark := c.versions[p.ID]
	c.mu.Unlock()
	return p.Version >= max(min, mark)
}

// Outdated reports whether a product of wants has a high-water mark above
// the version it asks for: an event newer than what the caller read has
// since been applied (here or, announced, on another replica).
func (c *Client) Outdated(wants []Want) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range wants {
		if c.versions[w.ID] > w.MinVersion {
			return true
		}
	}
	return false
}
