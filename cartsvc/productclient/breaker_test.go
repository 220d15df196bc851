package productclient

import (
	"testing"
	"time"
)

// TestBreakerBacksOffBetweenProbes: each failed probe doubles the open
// period up to the maximum; a successful probe closes the breaker and
// resets the period.
func TestBreakerBacksOffBetweenProbes(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var changes []string
	b := newBreaker(2, time.Second, 5*time.Second, func() time.Time { return now }, func(from, to State) {
		changes = append(changes, from.String()+">"+to.String())
	})
	fail := func() {
		t.Helper()
		if err := b.allow(); err != nil {
			t.Fatalf("allow in state %v: %v", b.State(), err)
		}
		b.done(failed)
	}
	fail()
	fail()
	if s := b.State(); s != StateOpen {
		t.Fatalf("after 2 failures: %v, want open", s)
	}
	// Probes after 1 s, then 2 s, 4 s, 5 s (the maximum), 5 s.
	for i, period := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		now = now.Add(period - time.Millisecond)
		if err := b.allow(); err != ErrOpenState {
			t.Fatalf("probe %d: %v before the %v period ended, want ErrOpenState", i, err, period)
		}
		now = now.Add(time.Millisecond)
		if s := b.State(); s != StateHalfOpen {
			t.Fatalf("probe %d: %v after the %v period, want half-open", i, s, period)
		}
		fail()
		if err := b.allow(); err != ErrOpenState {
			t.Fatalf("after failed probe %d: %v, want ErrOpenState", i, err)
		}
	}
	now = now.Add(5 * time.Second)
	if err := b.allow(); err != nil {
		t.Fatalf("the probe: %v", err)
	}
	if err := b.allow(); err != ErrTooManyRequests {
		t.Errorf("a second call while the probe is out: %v, want ErrTooManyRequests", err)
	}
	b.done(succeeded)
	if s := b.State(); s != StateClosed {
		t.Fatalf("after a successful probe: %v, want closed", s)
	}
	// The period starts again at 1 s.
	fail()
	fail()
	now = now.Add(time.Second)
	if s := b.State(); s != StateHalfOpen {
		t.Errorf("1 s after opening again: %v, want half-open (the period was reset)", s)
	}
	if len(changes) < 3 || changes[0] != "closed>open" || changes[1] != "open>half-open" {
		t.Errorf("state changes = %v", changes)
	}
}
