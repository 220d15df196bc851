package productsvc

import (
	"encoding/binary"
	"errors"
	"flag"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

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

// readCache keeps products read from the database for GetProduct (and,
// in lists, ListProducts pages: see listCache). It never
// serves a product older than a change this replica committed or heard of:
//
//   - a change drops the product's entry after its commit (this replica's
//     writes) or when its announcement arrives (other replicas'), and bumps
//     the entry's shard generation first;
//   - a read fills the cache only if its shard's generation is the one it
//     saw before it read the database, so a read that raced a change
//     (read the old row, finished after the change was dropped) stores
//     nothing;
//   - it serves nothing while it cannot hear other replicas' changes (not
//     live: before the listener is connected and after it lost its
//     connection), and forgets everything when it connects again.
//
// A nil *readCache is off: every lookup misses and nothing is stored.
type readCache struct {
	shards   [cacheShards]cacheShard
	perShard int // bytes (entryCost) each shard may hold
	ttl      time.Duration
	now      func() time.Time
	live     atomic.Bool
	lookups  *prometheus.CounterVec
	hit      prometheus.Counter
	miss     prometheus.Counter
	bypass   prometheus.Counter
	lists    listCache
}

type cacheShard struct {
	mu      sync.Mutex
	gen     uint64
	bytes   int
	entries map[uuid.UUID]cacheEntry
}

// entryOverhead is what a cached product costs beyond its text: the
// struct, the map slot and the string headers, rounded up.
const entryOverhead = 256

// entryCost is what p counts against the cache's bound.
func entryCost(p productdb.Product) int {
	return entryOverhead + len(p.Sku) + len(p.Name) + len(p.Description) + len(p.CategoryName) + len(p.CurrencyCode)
}

type cacheEntry struct {
	p       productdb.Product
	expires time.Time
}

func newReadCache(cfg ReadCacheConfig, now func() time.Time) *readCache {
	budget := cfg.MB << 20
	c := &readCache{perShard: budget * 3 / 4 / cacheShards, ttl: cfg.TTL, now: now}
	for i := range c.shards {
		c.shards[i].entries = make(map[uuid.UUID]cacheEntry)
	}
	c.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "productsvc_read_cache_lookups_total",
		Help: "Lookups in the read cache, of a product (GetProduct) or a page (ListProducts): hit, miss (read from the database), bypass (cache not live: not yet or no longer hearing other replicas' changes).",
	}, []string{"kind", "result"})
	c.hit, c.miss, c.bypass = c.lookups.WithLabelValues("product", "hit"), c.lookups.WithLabelValues("product", "miss"), c.lookups.WithLabelValues("product", "bypass")
	c.lists = listCache{maxBytes: budget / 4, entries: make(map[string]listEntry),
		hit: c.lookups.WithLabelValues("list", "hit"), miss: c.lookups.WithLabelValues("list", "miss"), bypass: c.lookups.WithLabelValues("list", "bypass")}
	return c
}

func (c *readCache) shard(id uuid.UUID) *cacheShard {
	return &c.shards[binary.LittleEndian.Uint64(id[8:])%cacheShards]
}

// get returns id's cached product, or, on a miss, the generation to give
// fill with the product read from the database.
func (c *readCache) get(id uuid.UUID) (productdb.Product, uint64, bool) {
	if c == nil {
		return productdb.Product{}, 0, false
	}
	if !c.live.Load() {
		c.bypass.Inc()
		return productdb.Product{}, 0, false
	}
	s := c.shard(id)
	s.mu.Lock()
	e, ok := s.entries[id]
	gen := s.gen
	s.mu.Unlock()
	if ok && c.now().Before(e.expires) {
		c.hit.Inc()
		return e.p, gen, true
	}
	c.miss.Inc()
	return productdb.Product{}, gen, false
}

// fill stores p, read after get answered gen, unless a change to its shard
// came in between or the cache is not live.
func (c *readCache) fill(gen uint64, p productdb.Product) {
	if c == nil || !c.live.Load() {
		return
	}
	s := c.shard(p.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	cost := entryCost(p)
	if cost > c.perShard {
		return
	}
	if old, ok := s.entries[p.ID]; ok {
		s.bytes -= entryCost(old.p)
		delete(s.entries, p.ID)
	}
	for victim, e := range s.entries { // map order: random victims
		if s.bytes+cost <= c.perShard {
			break
		}
		s.bytes -= entryCost(e.p)
		delete(s.entries, victim)
	}
	s.entries[p.ID] = cacheEntry{p: p, expires: c.now().Add(c.ttl)}
	s.bytes += cost
}

// drop forgets ids and every page (any page may list them), and stops
// reads in flight on their shards, and lists in flight, from filling.
func (c *readCache) drop(ids []uuid.UUID) {
	if c == nil || len(ids) == 0 {
		return
	}
	c.lists.dropAll()
	for _, id := range ids {
		s := c.shard(id)
		s.mu.Lock()
		s.gen++
		if e, ok := s.entries[id]; ok {
			s.bytes -= entryCost(e.p)
			delete(s.entries, id)
		}
		s.mu.Unlock()
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
		s := &c.shards[i]
		s.mu.Lock()
		s.gen++
		clear(s.entries)
		s.bytes = 0
		s.mu.Unlock()
	}
}

// setLive turns serving on (the listener is connected, after a dropAll) or
// off.
func (c *readCache) setLive(live bool) {
	if c != nil {
		c.live.Store(live)
	}
}
