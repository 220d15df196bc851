package relay

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Backoff is the per-event retry schedule after a transient failure. The
// n-th failed attempt of an event (n ≥ 1) makes it due again after
//
//	interval(n) = min(Initial × Multiplier^(n-1), Max)
//	delay(n, u) = interval(n) × (1 − Jitter + 2 × Jitter × u),  u uniform in [0, 1)
//
// so the delay lies in [interval × (1 − Jitter), interval × (1 + Jitter)).
// The interval comes from github.com/cenkalti/backoff/v4's
// ExponentialBackOff (its multiplication and cap, without its elapsed-time
// limit); the jitter is that package's formula applied to an injectable u,
// because the package draws u from the global math/rand. The schedule is a
// pure function of the attempt count: the next attempt time is stored in the
// event's outbox row, and no goroutine sleeps for it.
type Backoff struct {
	// Initial is the interval after the first failed attempt.
	Initial time.Duration
	// Multiplier grows the interval after each further failure.
	Multiplier float64
	// Max caps the interval (before jitter).
	Max time.Duration
	// Jitter is the randomization factor in [0, 1).
	Jitter float64
}

// DefaultBackoff starts at 1 s, doubles, caps at 15 min and spreads each
// delay by ±50%.
var DefaultBackoff = Backoff{Initial: time.Second, Multiplier: 2, Max: 15 * time.Minute, Jitter: 0.5}

// Interval returns interval(n), the delay before jitter after n failed
// attempts (n < 1 is taken as 1).
func (b Backoff) Interval(n int) time.Duration {
	eb := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(b.Initial),
		backoff.WithMultiplier(b.Multiplier),
		backoff.WithMaxInterval(b.Max),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(0),
	)
	d := eb.NextBackOff()
	for i := 1; i < n && d < b.Max; i++ {
		d = eb.NextBackOff()
	}
	return d
}

// Delay returns delay(n, u): Interval(n) spread by Jitter with u in [0, 1).
func (b Backoff) Delay(n int, u float64) time.Duration {
	iv := float64(b.Interval(n))
	return time.Duration(iv * (1 - b.Jitter + 2*b.Jitter*u))
}
