package productsvc

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
)

// listCache keeps ListProducts pages, keyed by the request, for the read
// cache: a quarter of its memory. Any change to any product drops every
// page (a product's change may move it into or out of any list), with the
// same generation check as products: a page read while a change committed
// is not stored. Pages answer many callers at once: they are never
// modified once stored.
type listCache struct {
	mu       sync.Mutex
	gen      uint64
	bytes    int
	maxBytes int
	entries  map[string]listEntry

	hit, miss, bypass prometheus.Counter
}

type listEntry struct {
	resp    *productv1.ListProductsResponse
	cost    int
	expires time.Time
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
	l := &c.lists
	if !c.live.Load() {
		l.bypass.Inc()
		return nil, 0, false
	}
	l.mu.Lock()
	e, ok := l.entries[key]
	gen := l.gen
	l.mu.Unlock()
	if ok && c.now().Before(e.expires) {
		l.hit.Inc()
		return e.resp, gen, true
	}
	l.miss.Inc()
	return nil, gen, false
}

// fillList stores resp under key unless a product changed since getList
// answered gen, or the cache is not live.
func (c *readCache) fillList(gen uint64, key string, resp *productv1.ListProductsResponse) {
	if c == nil || !c.live.Load() {
		return
	}
	l := &c.lists
	cost := entryOverhead + len(key) + proto.Size(resp)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen != gen || cost > l.maxBytes {
		return
	}
	if old, ok := l.entries[key]; ok {
		l.bytes -= old.cost
		delete(l.entries, key)
	}
	for victim, e := range l.entries { // map order: random victims
		if l.bytes+cost <= l.maxBytes {
			break
		}
		l.bytes -= e.cost
		delete(l.entries, victim)
	}
	l.entries[key] = listEntry{resp: resp, cost: cost, expires: c.now().Add(c.ttl)}
	l.bytes += cost
}

// dropAll forgets every page and stops lists in flight from filling.
func (l *listCache) dropAll() {
	l.mu.Lock()
	l.gen++
	clear(l.entries)
	l.bytes = 0
	l.mu.Unlock()
}
