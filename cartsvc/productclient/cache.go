package productclient

import (
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/google/uuid"
)

// cached is a cache value: the product and when it was fetched.
type cached struct {
	Product
	fetched time.Time
}

// newCache is the product cache: at most maxEntries products (each costs
// 1), eviction counted in m, and never an entry replaced by an older
// version of its product.
func newCache(maxEntries int64, m *metrics) (*ristretto.Cache[string, cached], error) {
	return ristretto.NewCache(&ristretto.Config[string, cached]{
		OnEvict:            func(*ristretto.Item[cached]) { m.evictions.Inc() },
		NumCounters:        maxEntries * 10,
		MaxCost:            maxEntries,
		BufferItems:        64,
		IgnoreInternalCost: true, // cost 1 per product, not bytes
		ShouldUpdate: func(next, prev cached) bool {
			return next.Missing || next.Version >= prev.Version
		},
	})
}

func key(id uuid.UUID) string { return string(id[:]) }

// cached returns the cache entry of id if it is not older than min or the
// product's high-water mark.
func (c *Client) cached(id uuid.UUID, min int64) (cached, bool) {
	e, ok := c.cache.Get(key(id))
	if !ok || !c.usable(e.Product, min) {
		return cached{}, false
	}
	return e, true
}
