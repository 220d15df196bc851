package cartsvc

import (
	"context"
	"errors"
	"flag"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/prometheus/client_golang/prometheus"

	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
)

// Cart cache defaults.
const (
	// DefaultCartCacheMB is how much memory a replica's cart cache may
	// hold: about 4,000 carts of 20 lines.
	DefaultCartCacheMB = 16
	// DefaultCartCacheTTL bounds how long a cached cart is used: the
	// staleness of a line's snapshot left if this replica missed an event
	// (its version mark was forgotten) and productsvc cannot be reached.
	DefaultCartCacheTTL = 30 * time.Second
)

// CartCacheConfig sizes the cart cache (see cartCache).
type CartCacheConfig struct {
	// MB bounds the memory the cached carts take, in MiB; 0 turns the
	// cache off.
	MB int
	// TTL is the longest a cached cart is used.
	TTL time.Duration
}

// RegisterFlags adds the cart cache's flags to fs, with defaults.
func (c *CartCacheConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MB, "cart-cache-mb", DefaultCartCacheMB, "MiB of carts read by GetCart kept in memory (0: off); a cached cart is used only while its revision in the database is unchanged and no event about its products has been heard since")
	fs.DurationVar(&c.TTL, "cart-cache-ttl", DefaultCartCacheTTL, "longest a cached cart is used")
}

// Validate reports a flag value that cannot work.
func (c CartCacheConfig) Validate() error {
	if c.MB < 0 {
		return errors.New("--cart-cache-mb must not be negative")
	}
	if c.MB > 0 && c.TTL <= 0 {
		return errors.New("--cart-cache-ttl must be positive")
	}
	return nil
}

// cartCache keeps the carts GetCart read (without holds, marks or stored
// results), by user, so that reading an
// unchanged cart again costs one primary-key probe of its revision
// instead of reading its lines (concurrent requests share a probe: see
// revisionProber). A cached cart is used only when it is unchanged
// (Service.unchangedSince, also used by cart writes) and live:
//
//   - its revision (the xmin of the user's carts row, read in the same
//     snapshot as the lines) is still the revision in the database: every
//     cart write, on any replica, rewrites that row, so the user always
//     reads their own writes;
//   - no line's product has a version mark above the version the line was
//     read with (productclient.Client.Outdated): an applied event changes
//     lines (snapshot, availability) without a cart write, and raises the
//     mark on this replica at once and on the others when its
//     notification arrives, as for the product cache;
//   - the replica hears the other replicas' marks (live: the versions
//     listener is connected and has caught up);
//   - it is younger than the TTL.
//
// A cart holding promo codes is not cached: whether a code still gives a
// discount depends on the code, which an admin may deactivate without a
// cart write. Cached carts are never modified (every read gets the same
// slices). A nil *cartCache is off.
type cartCache struct {
	c         *ristretto.Cache[string, cartView]
	ttl       time.Duration
	live      atomic.Bool
	revisions *revisionProber

	lookups                              *prometheus.CounterVec
	hit, miss, changed, outdated, bypass prometheus.Counter
}

// Costs counted against the cache's bound, in bytes: a cart's entry and
// map slot, and each line beyond its text.
const (
	cartEntryOverhead = 256
	cartLineOverhead  = int64(unsafe.Sizeof(cartLine{}))
)

// cost is what a cached cart counts against the cache's bound.
func (v cartView) cost() int64 {
	n := int64(cartEntryOverhead)
	for _, l := range v.lines {
		n += cartLineOverhead + int64(len(l.Name)+len(l.CurrencyCode))
	}
	return n
}

// newCartCache returns the cache cfg asks for, probing revisions with q,
// or nil when it is off.
func newCartCache(cfg CartCacheConfig, q *cartdb.Queries) (*cartCache, error) {
	if cfg.MB <= 0 {
		return nil, nil
	}
	budget := int64(cfg.MB) << 20
	c, err := ristretto.NewCache(&ristretto.Config[string, cartView]{
		NumCounters:        budget / 2048 * 10, // ten per cart of ~2 KiB
		MaxCost:            budget,
		BufferItems:        64,
		IgnoreInternalCost: true, // cost() counts the entry
	})
	if err != nil {
		return nil, err
	}
	cc := &cartCache{c: c, ttl: cfg.TTL, revisions: &revisionProber{q: q}, lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cartsvc_cart_cache_lookups_total",
		Help: "GetCart's lookups in the cart cache: hit (the cached cart was used), miss (none cached), changed (the cart was written since), outdated (an event about one of its products was heard since), bypass (not hearing other replicas' events: not yet, or the connection was lost).",
	}, []string{"result"})}
	cc.hit, cc.miss, cc.changed = cc.lookups.WithLabelValues("hit"), cc.lookups.WithLabelValues("miss"), cc.lookups.WithLabelValues("changed")
	cc.outdated, cc.bypass = cc.lookups.WithLabelValues("outdated"), cc.lookups.WithLabelValues("bypass")
	return cc, nil
}

// setLive says whether the replica hears every version mark; the cache is
// used only while it does, and forgets everything when it stops.
func (c *cartCache) setLive(live bool) {
	if c == nil {
		return
	}
	if !live {
		c.c.Clear()
	}
	c.live.Store(live)
}

// close releases the cache's goroutines.
func (c *cartCache) close() {
	if c != nil {
		c.c.Close()
	}
}

// readCartForGet is the user's cart for GetCart: the cached one if it may
// be used (see cartCache), else read with readCart and cached.
func (s *Service) readCartForGet(ctx context.Context, user string) (cartView, error) {
	c := s.carts
	if c == nil {
		return s.readCart(ctx, s.q, user, nil, nil)
	}
	if !c.live.Load() {
		c.bypass.Inc()
		return s.readCart(ctx, s.q, user, nil, nil)
	}
	if e, ok := c.c.Get(user); ok {
		revision, err := c.revisions.revision(ctx, user)
		if err != nil {
			return cartView{}, err
		}
		switch {
		case s.unchangedSince(e, revision):
			c.hit.Inc()
			return e, nil
		case revision != e.revision:
			c.changed.Inc()
		default:
			c.outdated.Inc()
		}
	} else {
		c.miss.Inc()
	}
	v, err := s.readCart(ctx, s.q, user, nil, nil)
	if err == nil && v.revision != 0 && len(v.holds) == 0 {
		c.c.SetWithTTL(user, v, v.cost(), c.ttl)
	}
	return v, err
}
