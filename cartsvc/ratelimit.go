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
	// maxCallers bounds the limiters kept; when full, all are forgotten
	// (callers are a handful of service clients, so this only caps abuse).
	maxCallers = 10_000
)

// callerLimits is a token bucket per caller, weighted by events: a call of
// n events takes n tokens (at least 1), so a caller's cost to the database
// is bounded whatever its batch sizes.
type callerLimits struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	callers map[string]*rate.Limiter
}

// newCallerLimits allows each caller perSecond events per second with
// bursts of burst events; burst 0 takes max(MaxEventBatch, perSecond), so
// a full batch passes when the caller has been quiet for a while.
func newCallerLimits(perSecond float64, burst int) *callerLimits {
	if burst <= 0 {
		burst = max(MaxEventBatch, int(math.Min(math.Ceil(perSecond), math.MaxInt32)))
	}
	return &callerLimits{limit: rate.Limit(perSecond), burst: burst, callers: map[string]*rate.Limiter{}}
}

// allow reports whether caller may deliver n events at now, taking the
// tokens if so. A refused call takes none.
func (l *callerLimits) allow(caller string, now time.Time, n int) bool {
	l.mu.Lock()
	lim, ok := l.callers[caller]
	if !ok {
		if len(l.callers) >= maxCallers {
			clear(l.callers)
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.callers[caller] = lim
	}
	l.mu.Unlock()
	return lim.AllowN(now, max(1, n))
}
