package cartsvc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	"github.com/decoupledshop/shop/internal/auth"
)

// Defaults of UserLimits.
const (
	DefaultUserWritesInFlight = 1
	DefaultUserWriteWait      = 250 * time.Millisecond
	DefaultUserRate           = 20
	DefaultUserBurst          = 40
	// maxLimitedUsers bounds the users' rate limiters kept.
	maxLimitedUsers = 100_000
)

// UserLimits bounds what one user can hold of a replica, so that one
// user's burst does not slow the others: the cart and wishlist writes it
// runs at once (each holds a database connection, most of the time
// waiting for the user's cart lock), and its request rate.
type UserLimits struct {
	// WritesInFlight is how many cart and wishlist writes of one user run
	// at once; more wait up to WriteWait for their turn, then fail with
	// ResourceExhausted. Default DefaultUserWritesInFlight, 1: a user's
	// writes take turns on the user's cart lock anyway, so a second one in
	// flight would only hold a database connection while it waits.
	WritesInFlight int
	// WriteWait is how long a write waits for its turn. Default
	// DefaultUserWriteWait.
	WriteWait time.Duration
	// Rate is how many cart, wishlist and promo code requests per second
	// one user may make (reads included), with bursts of Burst; more fail
	// with ResourceExhausted. Defaults DefaultUserRate and
	// DefaultUserBurst.
	Rate  float64
	Burst int
	// Now is the rate limit's clock; default time.Now (not Options.Now:
	// the limit is about real load).
	Now func() time.Time
}

// RegisterFlags registers the flags of the per-user limits on fs; they fill
// l when fs is parsed.
func (l *UserLimits) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&l.WritesInFlight, "user-writes-in-flight", DefaultUserWritesInFlight, "cart and wishlist writes one user may run at once on this replica; more wait --user-write-wait, then get ResourceExhausted")
	fs.DurationVar(&l.WriteWait, "user-write-wait", DefaultUserWriteWait, "how long a user's write waits for its turn before ResourceExhausted")
	fs.Float64Var(&l.Rate, "user-rate", DefaultUserRate, "requests per second one user may make to this replica; more get ResourceExhausted")
	fs.IntVar(&l.Burst, "user-burst", DefaultUserBurst, "the burst of requests one user may make above --user-rate")
}

// Validate checks the values the flags set.
func (l *UserLimits) Validate() error {
	switch {
	case l.WritesInFlight < 1:
		return fmt.Errorf("--user-writes-in-flight: must be at least 1, got %d", l.WritesInFlight)
	case l.WriteWait < 0:
		return fmt.Errorf("--user-write-wait: must not be negative, got %s", l.WriteWait)
	case !(l.Rate > 0) || math.IsInf(l.Rate, 0):
		return fmt.Errorf("--user-rate: must be a positive number of requests per second, got %g", l.Rate)
	case l.Burst < 1:
		return fmt.Errorf("--user-burst: must be at least 1, got %d", l.Burst)
	}
	return nil
}

func (l UserLimits) withDefaults() UserLimits {
	if l.WritesInFlight <= 0 {
		l.WritesInFlight = DefaultUserWritesInFlight
	}
	if l.WriteWait <= 0 {
		l.WriteWait = DefaultUserWriteWait
	}
	if l.Rate <= 0 {
		l.Rate = DefaultUserRate
	}
	if l.Burst <= 0 {
		l.Burst = DefaultUserBurst
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	return l
}

// userWrites are the procedures UserLimits.WritesInFlight bounds.
var userWrites = map[string]bool{
	cartv1connect.CartServiceAddCartItemProcedure:                true,
	cartv1connect.CartServiceUpdateCartItemProcedure:             true,
	cartv1connect.CartServiceRemoveCartItemProcedure:             true,
	cartv1connect.CartServiceClearCartProcedure:                  true,
	cartv1connect.CartServiceApplyPromoCodeProcedure:             true,
	cartv1connect.CartServiceRemovePromoCodeProcedure:            true,
	cartv1connect.WishlistServiceAddWishlistItemProcedure:        true,
	cartv1connect.WishlistServiceRemoveWishlistItemProcedure:     true,
	cartv1connect.WishlistServiceMoveWishlistItemToCartProcedure: true,
}

// fairness enforces UserLimits on the requests of user tokens.
type fairness struct {
	limits UserLimits
	now    func() time.Time
	rates  *limiters

	mu    sync.Mutex
	turns map[string]*turns // users with writes running or waiting
}

// turns are one user's write slots; refs counts the writes holding or
// waiting for one, and the entry goes when it drops to 0.
type turns struct {
	slots chan struct{}
	refs  int
}

func newFairness(l UserLimits) *fairness {
	return &fairness{limits: l, now: l.Now, rates: newLimiters(l.Rate, l.Burst, maxLimitedUsers), turns: map[string]*turns{}}
}

// interceptor applies the limits before the handler runs.
func (f *fairness) interceptor() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			id, ok := auth.FromContext(ctx)
			if !ok || id.Service || id.Subject == "" {
				return next(ctx, req) // the handler refuses it
			}
			if err := f.admit(id.Subject); err != nil {
				return nil, err
			}
			if !userWrites[req.Spec().Procedure] {
				return next(ctx, req)
			}
			release, err := f.turn(ctx, id.Subject)
			if err != nil {
				return nil, err
			}
			defer release()
			return next(ctx, req)
		}
	}
}

// admit takes one request from user's rate, or returns ResourceExhausted
// with the wait until the next one would pass.
func (f *fairness) admit(user string) error {
	now := f.now()
	r := f.rates.get(user, now).ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return tooMany(fmt.Sprintf("more than %g requests per second from this user", f.limits.Rate), d)
	}
	return nil
}

// turn waits up to WriteWait for one of user's write slots and returns its
// release, or ResourceExhausted (ctx's error if it ends first).
func (f *fairness) turn(ctx context.Context, user string) (func(), error) {
	f.mu.Lock()
	t := f.turns[user]
	if t == nil {
		t = &turns{slots: make(chan struct{}, f.limits.WritesInFlight)}
		f.turns[user] = t
	}
	t.refs++
	f.mu.Unlock()
	leave := func() {
		f.mu.Lock()
		if t.refs--; t.refs == 0 {
			delete(f.turns, user)
		}
		f.mu.Unlock()
	}
	select {
	case t.slots <- struct{}{}:
		return func() { <-t.slots; leave() }, nil
	default:
	}
	timer := time.NewTimer(f.limits.WriteWait)
	defer timer.Stop()
	select {
	case t.slots <- struct{}{}:
		return func() { <-t.slots; leave() }, nil
	case <-timer.C:
		leave()
		return nil, tooMany(fmt.Sprintf("more than %d cart writes at once from this user", f.limits.WritesInFlight), f.limits.WriteWait)
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}

// tooMany is ResourceExhausted naming the limit, with a retry hint: the
// wait in the message and, in whole seconds (at least 1), in a Retry-After
// header.
func tooMany(what string, wait time.Duration) error {
	wait = max(wait, time.Millisecond).Round(time.Millisecond)
	err := connect.NewError(connect.CodeResourceExhausted, errors.New(what+"; retry in "+wait.String()))
	err.Meta().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	return err
}
