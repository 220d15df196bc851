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
	// DefaultReadCacheSize is how many products a replica keeps in memory
	// for GetProduct (about 1 KB each).
	DefaultReadCacheSize = 10000
	// DefaultReadCacheTTL bounds how long an entry is served: the
	// staleness left if a replica missed a change (its writer died between
	// commit and announcement); changes otherwise reach every replica's
	// cache within ChangesInterval plus one NOTIFY.
	DefaultReadCacheTTL = 10 * time.Second
)

// ReadCacheConfig sizes a Store's read cache (see Store.EnableReadCache).
type ReadCacheConfig struct {
	// Size is the most products kept; 0 turns the cache off (changes are
	// still announced to other replicas).
	Size int
	// TTL is the longest an entry is served.
	TTL time.Duration
}

// RegisterFlags adds the read cache's flags to fs, with defaults.
func (c *ReadCacheConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Size, "read-cache-size", DefaultReadCacheSize, "products kept in memory for GetProduct (0: off); every replica drops a product from it when any replica changes it")
	fs.DurationVar(&c.TTL, "read-cache-ttl", DefaultReadCacheTTL, "longest a cached product is served: the bound on staleness if a replica missed a change")
}

// Validate reports a flag value that cannot work.
func (c ReadCacheConfig) Validate() error {
	if c.Size < 0 {
		return errors.New("--read-cache-size must not be negative")
	}
	if c.Size > 0 && c.TTL <= 0 {
		return errors.New("--read-cache-ttl must be positive")
	}
	return nil
}

// cacheShards spreads the cache's lock; a power of two.
const cacheShards = 32

// readCache keeps products read from the database for GetProduct. It never
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
	perShard int
	ttl      time.Duration
	now      func() time.Time
	live     atomic.Bool
	lookups  *prometheus.CounterVec
	hit      prometheus.Counter
	miss     prometheus.Counter
	bypass   prometheus.Counter
}

type cacheShard struct {
	mu      sync.Mutex
	gen     uint64
	entries map[uuid.UUID]cacheEntry
}

type cacheEntry struct {
	p       productdb.Product
	expires time.Time
}

func newReadCache(cfg ReadCacheConfig, now func() time.Time) *readCache {
	c := &readCache{perShard: max(1, (cfg.Size+cacheShards-1)/cacheShards), ttl: cfg.TTL, now: now}
	for i := range c.shards {
		c.shards[i].entries = make(map[uuid.UUID]cacheEntry)
	}
	c.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "productsvc_read_cache_lookups_total",
		Help: "GetProduct lookups in the read cache: hit, miss (read from the database), bypass (cache not live: not yet or no longer hearing other replicas' changes).",
	}, []string{"result"})
	c.hit, c.miss, c.bypass = c.lookups.WithLabelValues("hit"), c.lookups.WithLabelValues("miss"), c.lookups.WithLabelValues("bypass")
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
	if _, ok := s.entries[p.ID]; !ok && len(s.entries) >= c.perShard {
		for victim := range s.entries { // map order: a random victim
			delete(s.entries, victim)
			break
		}
	}
	s.entries[p.ID] = cacheEntry{p: p, expires: c.now().Add(c.ttl)}
}

// drop forgets ids, and stops reads in flight on their shards from filling.
func (c *readCache) drop(ids []uuid.UUID) {
	if c == nil {
		return
	}
	for _, id := range ids {
		s := c.shard(id)
		s.mu.Lock()
		s.gen++
		delete(s.entries, id)
		s.mu.Unlock()
	}
}

// dropAll forgets everything (a change too large to name, or a listener
// that reconnected and may have missed changes).
func (c *readCache) dropAll() {
	if c == nil {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.gen++
		clear(s.entries)
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
