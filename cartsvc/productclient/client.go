// Package productclient is cartsvc's client of productsvc. It reads products with
// BatchGetProducts through a bounded ristretto cache, makes one call for
// all of a lookup's misses, shares a fetch in flight with every concurrent
// lookup of the same product (singleflight), retries idempotent reads with
// exponential backoff inside the caller's deadline, and stops calling a
// failing productsvc with a circuit breaker that probes again after 500 ms,
// doubling the wait after each failed probe up to 1 s (see breaker).
//
// Cached entries carry the product version. A per-product high-water mark
// (fed by ObserveVersion, and by the minimum versions callers pass in each
// Want) decides which entries may be served: one older than the mark never
// is, and a fetch that was in flight when a newer version was observed
// does not put its older result into the cache.
package productclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/google/uuid"

	"github.com/decoupledshop/shop/internal/server"
)

// ErrUnavailable wraps every error of a lookup that productsvc did not
// answer (down, slow, breaker open, or a failure of its own).
var ErrUnavailable = errors.New("productclient: productsvc did not answer")

// Product is what a cart needs of a catalog product.
type Product struct {
	ID uuid.UUID
	// Missing is true when productsvc reported the id in missing_ids:
	// deleted (which is final) or never created. The other fields are then
	// zero.
	Missing    bool
	Name       string
	PriceMinor int64
	Currency   string
	Version    int64
}

// Want asks for one product.
type Want struct {
	ID uuid.UUID
	// MinVersion is the highest version the caller has recorded for the
	// product; older data is never returned.
	MinVersion int64
	// Live skips the cache: the product is returned only if productsvc
	// answered for it during this lookup (or a fetch in flight that the
	// lookup joined).
	Live bool
}

// Entry is a looked-up product.
type Entry struct {
	Product
	// Stale is true when the entry came from the cache after its TTL
	// because productsvc could not answer.
	Stale bool
}

// Stats counts what the client did, for tests and metrics.
type Stats struct {
	// Calls is the number of BatchGetProducts calls attempted (retries
	// included) that the breaker let through.
	Calls int64
	// Shared is the number of product fetches a lookup joined instead of
	// making its own call.
	Shared int64
	// Rejected is the number of fetched products dropped because a newer
	// version was observed while the fetch was in flight.
	Rejected int64
}

// Client reads products from productsvc. It is safe for concurrent use.
type Client struct {
	addrs       *addresses
	unavailable *unavailableLog
	cache       *ristretto.Cache[string, cached]
	breaker     *breaker
	callTimeout time.Duration
	retries     int
	backoff     func() backoff.BackOff
	ttl         time.Duration
	maxStale    time.Duration
	now         func() time.Time

	mu          sync.Mutex
	inflight    map[uuid.UUID]*flight
	versions    map[uuid.UUID]int64 // high-water marks
	maxVersions int

	calls, shared, rejected atomic.Int64
	metrics                 *metrics
}

// New returns a Client for cfg. Close it to release the cache.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("productclient: BaseURL is required")
	}
	urls, err := splitURLs(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("productclient: BaseURL: %w", err)
	}
	cfg = cfg.withDefaults()
	m := newMetrics()
	cache, err := newCache(cfg.MaxEntries, m)
	if err != nil {
		return nil, fmt.Errorf("productclient: cache: %w", err)
	}
	log := cfg.Logger
	c := &Client{
		addrs:       newAddresses(urls, cfg.HTTPClient, append(server.ClientOptions(), cfg.ClientOptions...)),
		unavailable: &unavailableLog{log: cfg.Logger},
		cache:       cache,
		callTimeout: cfg.CallTimeout,
		retries:     cfg.Retries,
		backoff:     cfg.Backoff,
		ttl:         cfg.TTL,
		maxStale:    cfg.MaxStale,
		now:         cfg.Now,
		inflight:    map[uuid.UUID]*flight{},
		versions:    map[uuid.UUID]int64{},
		maxVersions: int(cfg.MaxEntries),
		metrics:     m,
	}
	c.breaker = newBreaker(cfg.BreakerFailures, cfg.BreakerOpen, cfg.BreakerOpenMax, cfg.BreakerNow, func(from, to State) {
		log.Warn("circuit breaker changed state", "breaker", "productsvc", "from", from.String(), "to", to.String())
		m.transitions.WithLabelValues(stateLabel(to)).Inc()
	})
	return c, nil
}

// Close releases the cache; lookups after Close always call productsvc.
func (c *Client) Close() { c.cache.Close() }

// Wait blocks until the cache has applied every write made before the
// call (ristretto applies them asynchronously). Tests use it.
func (c *Client) Wait() { c.cache.Wait() }

// BreakerState is the circuit breaker's current state.
func (c *Client) BreakerState() State { return c.breaker.State() }

// Stats returns the counters so far.
func (c *Client) Stats() Stats {
	return Stats{Calls: c.calls.Load(), Shared: c.shared.Load(), Rejected: c.rejected.Load()}
}

// Lookup returns the wanted products it can vouch for, by id.
//
// A product comes from the cache when its entry is younger than the TTL and
// not older than the product's high-water mark or MinVersion (Live wants
// skip this). All other products are fetched with one BatchGetProducts
// call (one per 100 ids), except those already being fetched by a
// concurrent lookup, whose fetch is joined. When productsvc does not
// answer, non-Live products fall back to older cache entries that are still
// new enough, marked Stale, and the error wraps ErrUnavailable; products
// with no usable data are absent from the map. A fetched product older
// than the mark is neither cached nor returned. If ctx ends before the
// fetch, Lookup stops waiting, falls back the same way and returns ctx's
// error; the fetch itself goes on until ctx's deadline for the lookups
// that joined it.
func (c *Client) Lookup(ctx context.Context, wants []Want) (map[uuid.UUID]Entry, error) {
	need := make(map[uuid.UUID]Want, len(wants))
	for _, w := range wants {
		if prev, ok := need[w.ID]; ok {
			w.MinVersion = max(w.MinVersion, prev.MinVersion)
			w.Live = w.Live || prev.Live
		}
		need[w.ID] = w
	}
	out := make(map[uuid.UUID]Entry, len(need))
	now := c.now()
	var misses []uuid.UUID
	for id, w := range need {
		if !w.Live {
			if e, ok := c.cached(id, w.MinVersion); ok && now.Sub(e.fetched) < c.ttl {
				out[id] = Entry{Product: e.Product}
				continue
			}
		}
		misses = append(misses, id)
	}
	c.metrics.hits.Add(float64(len(out)))
	c.metrics.misses.Add(float64(len(misses)))
	if len(misses) == 0 {
		return out, nil
	}
	slices.SortFunc(misses, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	fetched, err := c.fetch(ctx, misses)
	for _, id := range misses {
		w := need[id]
		if p, ok := fetched[id]; ok && c.usable(p, w.MinVersion) {
			out[id] = Entry{Product: p}
			continue
		}
		if w.Live {
			continue
		}
		if e, ok := c.cached(id, w.MinVersion); ok {
			out[id] = Entry{Product: e.Product, Stale: true}
			c.metrics.stale.Inc()
		}
	}
	return out, err
}
