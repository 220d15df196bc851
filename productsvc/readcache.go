package productsvc

import (
	"encoding/binary"
	"errors"
	"flag"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
)

// Read cache defaults.
const (
	// DefaultReadCacheMB is how much memory a replica's read cache may
	// hold, counted as the products' text plus a fixed overhead each
	// (entryOverhead): about 40,000 products with short descriptions.
	DefaultReadCacheMB = 32
	// DefaultReadCacheTTL bounds how long an entry is served: the
	// staleness left if a replica missed a change (its writer died between
	// commit and announcement); changes otherwise reach every replica's
	// cache within ChangesInterval plus one NOTIFY.
	DefaultReadCacheTTL = 10 * time.Second
)

// ReadCacheConfig sizes a Store's read cache (see Store.EnableReadCache).
type ReadCacheConfig struct {
	// MB bounds the memory the cached products take, in MiB; 0 turns the
	// cache off (changes are still announced to other replicas).
	MB int
	// TTL is the longest an entry is served.
	TTL time.Duration
}

// RegisterFlags adds the read cache's flags to fs, with defaults.
func (c *ReadCacheConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MB, "read-cache-mb", DefaultReadCacheMB, "MiB of products (GetProduct) and pages (ListProducts, a quarter) kept in memory (0: off); every replica drops a product, and every page, when any replica changes a product")
	fs.DurationVar(&c.TTL, "read-cache-ttl", DefaultReadCacheTTL, "longest a cached product is served: the bound on staleness if a replica missed a change")
}

// Validate reports a flag value that cannot work.
func (c ReadCacheConfig) Validate() error {
	if c.MB < 0 {
		return errors.New("--read-cache-mb must not be negative")
	}
	if c.MB > 0 && c.TTL <= 0 {
		return errors.New("--read-cache-ttl must be positive")
	}
	return nil
}

// cacheShards spreads the cache's lock; a power of two.
const cacheShards = 32

// readCache keeps products read from the database for GetProduct, and
// ListProducts pages. It never serves a product or page older than a
// change this replica committed or heard of:
//
//   - a change drops the product's entry, and every page (a product's
//     change may move it into or out of any list), after its commit (this
//     replica's writes) or when its announcement arrives (other
//     replicas'), bumping their generation (see bounded);
//   - a read fills the cache only if the generation is the one it saw
//     before it read the database, so a read that raced a change (read the
//     old row, finished after the change was dropped) stores nothing;
//   - it serves nothing while it cannot hear other replicas' changes (not
//     live: before the listener is connected and after it lost its
//     connection), and forgets everything when it connects again.
//
// Products take three quarters of its memory, in shards; pages, keyed by
// the request, the rest. Stored pages answer many callers at once: they are
// never modified. A nil *readCache is off: every lookup misses and nothing
// is stored.
type readCache struct {
	shards   [cacheShards]bounded[uuid.UUID, productdb.Product]
	lists    bounded[string, *productv1.ListProductsResponse]
	ttl      time.Duration
	now      func() time.Time
	live     atomic.Bool
	lookups  *prometheus.CounterVec
	products lookupCounters
	pages    lookupCounters
}

// lookupCounters count one kind's lookups by result.
type lookupCounters struct{ hit, miss, bypass prometheus.Counter }

// entryOverhead is what a cached product or page costs beyond its text or
// encoding: the struct, the map slot and the headers, rounded up.
const entryOverhead = 256

// entryCost is what p counts against the cache's bound.
func entryCost(p productdb.Product) int {
	return entryOverhead + len(p.Sku) + len(p.Name) + len(p.Description) + len(p.CategoryName) + len(p.CurrencyCode)
}

func newReadCache(cfg ReadCacheConfig, now func() time.Time) *readCache {
	budget := cfg.MB << 20
	c := &readCache{ttl: cfg.TTL, now: now}
	for i := range c.shards {
		c.shards[i].init(budget * 3 / 4 / cacheShards)
	}
	c.lists.init(budget / 4)
	c.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "productsvc_read_cache_lookups_total",
		Help: "Lookups in the read cache, of a product (GetProduct) or a page (ListProducts): hit, miss (read from the database), bypass (cache not live: not yet or no longer hearing other replicas' changes).",
	}, []string{"kind", "result"})
	counters := func(kind string) lookupCounters {
		return lookupCounters{c.lookups.WithLabelValues(kind, "hit"), c.lookups.WithLabelValues(kind, "miss"), c.lookups.WithLabelValues(kind, "bypass")}
	}
	c.products, c.pages = counters("product"), counters("list")
	return c
}

func (c *readCache) shard(id uuid.UUID) *bounded[uuid.UUID, productdb.Product] {
	return &c.shards[binary.LittleEndian.Uint64(id[8:])%cacheShards]
}

// lookup is c's get from b, counted in n: nothing while c is not live.
func lookup[K comparable, V any](c *readCache, b *bounded[K, V], k K, n lookupCounters) (V, uint64, bool) {
	var zero V
	if !c.live.Load() {
		n.bypass.Inc()
		return zero, 0, false
	}
	v, gen, ok := b.get(k, c.now())
	if ok {
		n.hit.Inc()
	} else {
		n.miss.Inc()
	}
	return v, gen, ok
}

// store is c's fill of b, for TTL: nothing while c is not live.
func store[K comparable, V any](c *readCache, b *bounded[K, V], gen uint64, k K, v V, cost int) {
	if c.live.Load() {
		b.fill(gen, k, v, cost, c.now().Add(c.ttl))
	}
}

// get returns id's cached product, or, on a miss, the generation to give
// fill with the product read from the database.
func (c *readCache) get(id uuid.UUID) (productdb.Product, uint64, bool) {
	if c == nil {
		return productdb.Product{}, 0, false
	}
	return lookup(c, c.shard(id), id, c.products)
}

// fill stores p, read after get answered gen, unless a change to its shard
// came in between or the cache is not live.
func (c *readCache) fill(gen uint64, p productdb.Product) {
	if c != nil {
		store(c, c.shard(p.ID), gen, p.ID, p, entryCost(p))
	}
}

// listKey is the cache key of a ListProducts request: its deterministic
// encoding, which names every filter, the page size and the page token.
func listKey(m *productv1.ListProductsRequest) (string, bool) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	return string(b), err == nil
}

// getList returns the stored page for key or, on a miss, the generation to
// give fillList.
func (c *readCache) getList(key string) (*productv1.ListProductsResponse, uint64, bool) {
	if c == nil {
		return nil, 0, false
	}
	return lookup(c, &c.lists, key, c.pages)
}

// fillList stores resp under key unless a product changed since getList
// answered gen, or the cache is not live.
func (c *readCache) fillList(gen uint64, key string, resp *productv1.ListProductsResponse) {
	if c != nil {
		store(c, &c.lists, gen, key, resp, entryOverhead+len(key)+proto.Size(resp))
	}
}

// drop forgets ids and every page (any page may list them), and stops
// reads in flight of them, and of any page, from filling.
func (c *readCache) drop(ids []uuid.UUID) {
	if c == nil || len(ids) == 0 {
		return
	}
	c.lists.dropAll()
	for _, id := range ids {
		c.shard(id).drop(id)
	}
}

// dropAll forgets everything (a change too large to name, or a listener
// that reconnected and may have missed changes).
func (c *readCache) dropAll() {
	if c == nil {
		return
	}
	c.lists.dropAll()
	for i := range c.shards {
		c.shards[i].dropAll()
	}
}

// setLive turns serving on (the listener is connected, after a dropAll) or
// off.
func (c *readCache) setLive(live bool) {
	if c != nil {
		c.live.Store(live)
	}
}
