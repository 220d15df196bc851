package productclient

import (
	"errors"
	"sync"
	"time"
)

// State is the circuit breaker's state.
type State int

// The breaker's states.
const (
	// StateClosed: calls go through; consecutive failures are counted.
	StateClosed State = iota
	// StateOpen: calls are refused until the open period ends.
	StateOpen
	// StateHalfOpen: one probe call at a time goes through; its success
	// closes the breaker, its failure opens it again for twice as long.
	StateHalfOpen
)

func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	}
	return "unknown"
}

// Errors of a call the breaker refused.
var (
	// ErrOpenState: the breaker is open.
	ErrOpenState = errors.New("circuit breaker is open")
	// ErrTooManyRequests: the breaker is half-open and its probe is out.
	ErrTooManyRequests = errors.New("circuit breaker is half-open; its probe is out")
)

// breaker stops calling a failing productsvc. Failures in a row open it;
// after the open period one probe call goes through (half-open). A failed
// probe opens it again for twice the previous period, up to openMax, so a
// productsvc that stays down is probed less and less often while one that
// comes back is noticed within one period; a successful probe closes it and
// resets the period to openMin.
type breaker struct {
	failures         uint32 // consecutive failures that open it
	openMin, openMax time.Duration
	now              func() time.Time
	onChange         func(from, to State)

	mu      sync.Mutex
	state   State
	failed  uint32        // consecutive failures while closed
	openFor time.Duration // the current (or next) open period
	until   time.Time     // end of the open period
	probing bool          // half-open: the probe is out
}

func newBreaker(failures uint32, openMin, openMax time.Duration, now func() time.Time, onChange func(from, to State)) *breaker {
	return &breaker{failures: failures, openMin: openMin, openMax: max(openMin, openMax), now: now, onChange: onChange, openFor: openMin}
}

// State returns the breaker's state now.
func (b *breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire()
	return b.state
}

// allow asks to make a call: nil, or ErrOpenState or ErrTooManyRequests.
// Each allowed call must be followed by one done.
func (b *breaker) allow() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire()
	switch {
	case b.state == StateOpen:
		return ErrOpenState
	case b.state == StateHalfOpen && b.probing:
		return ErrTooManyRequests
	case b.state == StateHalfOpen:
		b.probing = true
	}
	return nil
}

// result says how an allowed call went.
type result int

const (
	succeeded result = iota
	failed
	excluded // neither, e.g. cancelled by the caller
)

// done records the outcome of a call allow let through.
func (b *breaker) done(r result) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == StateHalfOpen {
		b.probing = false
		switch r {
		case succeeded:
			b.openFor = b.openMin
			b.set(StateClosed)
		case failed:
			b.openFor = min(2*b.openFor, b.openMax)
			b.open()
		}
		return
	}
	switch r {
	case succeeded:
		b.failed = 0
	case failed:
		b.failed++
		if b.state == StateClosed && b.failed >= b.failures {
			b.open()
		}
	}
}

// open opens the breaker for openFor.
func (b *breaker) open() {
	b.until = b.now().Add(b.openFor)
	b.set(StateOpen)
}

// expire turns an open breaker whose period ended half-open.
func (b *breaker) expire() {
	if b.state == StateOpen && !b.now().Before(b.until) {
		b.set(StateHalfOpen)
	}
}

func (b *breaker) set(to State) {
	from := b.state
	b.state, b.failed = to, 0
	if from != to && b.onChange != nil {
		b.onChange(from, to)
	}
}
