package productsvc

import (
	"sync"
	"time"
)

// bounded is a map of the read cache: bounded by the summed cost of its
// entries (random victims, in map order, make room), each entry with an
// expiry, and a generation that every drop bumps, so that a fill from a
// read that began before a drop stores nothing.
type bounded[K comparable, V any] struct {
	mu      sync.Mutex
	gen     uint64
	bytes   int
	max     int
	entries map[K]boundedEntry[V]
}

type boundedEntry[V any] struct {
	v       V
	cost    int
	expires time.Time
}

func (b *bounded[K, V]) init(max int) {
	b.max, b.entries = max, make(map[K]boundedEntry[V])
}

// get returns k's value unless it expired by now, and the generation to
// give fill after a miss.
func (b *bounded[K, V]) get(k K, now time.Time) (V, uint64, bool) {
	b.mu.Lock()
	e, ok := b.entries[k]
	gen := b.gen
	b.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.v, gen, true
	}
	var zero V
	return zero, gen, false
}

// fill stores v under k, read after get answered gen, unless a drop came
// in between or v alone exceeds the bound.
func (b *bounded[K, V]) fill(gen uint64, k K, v V, cost int, expires time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen != gen || cost > b.max {
		return
	}
	b.remove(k)
	for victim := range b.entries {
		if b.bytes+cost <= b.max {
			break
		}
		b.remove(victim)
	}
	b.entries[k] = boundedEntry[V]{v: v, cost: cost, expires: expires}
	b.bytes += cost
}

// remove deletes k; the caller holds mu.
func (b *bounded[K, V]) remove(k K) {
	if e, ok := b.entries[k]; ok {
		b.bytes -= e.cost
		delete(b.entries, k)
	}
}

// drop forgets k and stops fills in flight.
func (b *bounded[K, V]) drop(k K) {
	b.mu.Lock()
	b.gen++
	b.remove(k)
	b.mu.Unlock()
}

// dropAll forgets everything and stops fills in flight.
func (b *bounded[K, V]) dropAll() {
	b.mu.Lock()
	b.gen++
	clear(b.entries)
	b.bytes = 0
	b.mu.Unlock()
}
