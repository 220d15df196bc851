package cartsvc

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the event rate limit.
const (
	// DefaultEventRate is how many events per second one caller may deliver
	// to all replicas together.
	DefaultEventRate = 5000
	// maxCallers bounds the event callers' limiters kept.
	maxCallers = 10_000
)

// limiters is a token bucket per key (a caller, a user), at most max of
// them. When full, the buckets that have refilled completely are
// forgotten (a new one is the same), and if that frees nothing, all are.
type limiters struct {
	limit rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newLimiters(perSecond float64, burst, max int) *limiters {
	return &limiters{limit: rate.Limit(perSecond), burst: burst, max: max, buckets: map[string]*rate.Limiter{}}
}

// get returns key's bucket, making one if needed.
func (l *limiters) get(key string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.buckets[key]
	if ok {
		return lim
	}
	if len(l.buckets) >= l.max {
		for k, b := range l.buckets {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.buckets, k)
			}
		}
		if len(l.buckets) >= l.max {
			clear(l.buckets)
		}
	}
	lim = rate.NewLimiter(l.limit, l.burst)
	l.buckets[key] = lim
	return lim
}

// callerLimits is a token bucket per caller, weighted by events: a call of
// n events takes n tokens (at least 1), so a caller's cost to the database
// is bounded whatever its batch sizes.
type callerLimits struct {
	*limiters
}

// newCallerLimits allows each caller perSecond events per second with
// bursts of burst events; burst 0 takes one second of the rate (at least
// 1): the burst scales with the replica's share, so N replicas together
// never let more than the global rate plus one second of it through (a
// floor such as a full batch would add N floors). A sender whose batches
// exceed the burst halves them on ResourceExhausted.
func newCallerLimits(perSecond float64, burst int) *callerLimits {
	if burst <= 0 {
		burst = max(1, int(math.Min(math.Ceil(perSecond), math.MaxInt32)))
	}
	return &callerLimits{newLimiters(perSecond, burst, maxCallers)}
}

// allow reports whether caller may deliver n events at now, taking the
// tokens if so. A refused call takes none.
func (l *callerLimits) allow(caller string, now time.Time, n int) bool {
	return l.get(caller, now).AllowN(now, max(1, n))
}
