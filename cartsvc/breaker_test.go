package cartsvc_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/cartsvc/productclient"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// breakerCatalog opens the breaker after 2 failed calls, stays open 2 s
// (on the wall clock) and does not retry, so calls map one to
// one onto breaker outcomes.
func breakerCatalog(c *productclient.Config) {
	c.BreakerFailures = 2
	c.BreakerOpen = 2 * time.Second
	c.Retries = -1
}

// TestBreakerOpensHalfOpensCloses: consecutive failures open the breaker;
// while open, GetCart answers stale without calling productsvc and
// AddCartItem fails with Unavailable; after the open period one probe goes
// through and its success closes the breaker.
func TestBreakerOpensHalfOpensCloses(t *testing.T) {
	t.Parallel()
	b := setup(t, withCatalog(breakerCatalog))
	ctx := context.Background()
	soap := b.createProduct(t, "Soap", 250)
	b.add(t, "alice", soap, 2)

	b.products.Drop()
	for i := range 2 {
		b.expireCache()
		if c := b.cart(t, "alice"); !c.Stale || c.Total.GetAmountMinor() != 500 {
			t.Fatalf("GetCart %d with productsvc dropping connections = %v; want stale, from cache", i, c)
		}
	}
	if s := b.catalog.BreakerState(); s != productclient.StateOpen {
		t.Fatalf("after 2 failed calls the breaker is %v, want open", s)
	}
	b.products.Recover() // productsvc is back, but the breaker does not know yet
	before := b.products.Calls()
	if c := b.cart(t, "alice"); !c.Stale {
		t.Errorf("GetCart with the breaker open = %v; want stale", c)
	}
	_, err := b.carts("alice").AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: soap.Id, Quantity: 1}))
	if shoptest.Code(err) != connect.CodeUnavailable {
		t.Errorf("AddCartItem with the breaker open: %v, want Unavailable", err)
	}
	if got := b.products.Calls() - before; got != 0 {
		t.Errorf("with the breaker open %d calls reached productsvc, want 0", got)
	}

	eventually(t, "the breaker is half-open", func() bool { return b.catalog.BreakerState() == productclient.StateHalfOpen })
	c := b.cart(t, "alice")
	if c.Stale {
		t.Errorf("GetCart through the half-open breaker = %v; want fresh", c)
	}
	if got := b.products.Calls() - before; got != 1 {
		t.Errorf("the half-open breaker let %d calls through, want 1 probe", got)
	}
	if s := b.catalog.BreakerState(); s != productclient.StateClosed {
		t.Errorf("after a successful probe the breaker is %v, want closed", s)
	}
	b.add(t, "alice", soap, 1)
}

// TestBreakerCountsOnlyProductsvcFailures: answers productsvc gives itself
// (InvalidArgument, NotFound, Internal) and cancellation neither open the
// breaker nor are retried; Unavailable and DeadlineExceeded are retried and
// open it.
func TestBreakerCountsOnlyProductsvcFailures(t *testing.T) {
	t.Parallel()
	b := setup(t, withCatalog(func(c *productclient.Config) {
		c.BreakerFailures = 3
		c.Retries = 2
	}))
	b.add(t, "alice", b.createProduct(t, "Rope", 900), 1)
	lookup := func() int64 {
		t.Helper()
		b.expireCache()
		before := b.products.Calls()
		if c := b.cart(t, "alice"); !c.Stale {
			t.Fatalf("GetCart with failing productsvc = %v; want stale", c)
		}
		return b.products.Calls() - before
	}
	for _, code := range []connect.Code{connect.CodeInvalidArgument, connect.CodeNotFound, connect.CodeInternal, connect.CodeCanceled} {
		b.products.FailWith(code)
		for range 3 {
			if calls := lookup(); calls != 1 {
				t.Errorf("%v was attempted %d times, want once (not retried)", code, calls)
			}
		}
		if s := b.catalog.BreakerState(); s != productclient.StateClosed {
			t.Fatalf("after 3 × %v the breaker is %v, want closed", code, s)
		}
	}
	b.products.FailWith(connect.CodeUnavailable)
	if calls := lookup(); calls != 3 {
		t.Errorf("Unavailable was attempted %d times, want 3 (2 retries)", calls)
	}
	if s := b.catalog.BreakerState(); s != productclient.StateOpen {
		t.Errorf("after 3 Unavailable calls the breaker is %v, want open", s)
	}
}

// TestWritesRecoverSoonAfterProductsvcReturns: productsvc goes down, the
// breaker opens, and its first probe fails because productsvc is still
// down; productsvc comes back just after. Cart writes (retried by the
// client every 50 ms) succeed again within 2 s of productsvc being ready,
// not after a full open period. The figure prints; it is asserted only
// without the race detector.
func TestWritesRecoverSoonAfterProductsvcReturns(t *testing.T) {
	t.Parallel()
	b := setup(t, withCatalog(func(c *productclient.Config) {
		c.BreakerFailures = 2
		c.Retries = -1
	}))
	ctx := context.Background()
	soap := b.createProduct(t, "Soap", 250)
	b.add(t, "alice", soap, 1)
	write := func() error {
		_, err := b.carts("alice").AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: soap.Id, Quantity: 1}))
		return err
	}
	b.products.Drop()
	for range 2 {
		if err := write(); shoptest.Code(err) != connect.CodeUnavailable {
			t.Fatalf("AddCartItem with productsvc down: %v, want Unavailable", err)
		}
	}
	if s := b.catalog.BreakerState(); s != productclient.StateOpen {
		t.Fatalf("after 2 failed calls the breaker is %v, want open", s)
	}
	// The first probe fails: productsvc is still down.
	opened := b.products.Calls()
	deadline := time.Now().Add(5 * time.Second)
	for b.products.Calls() == opened {
		if time.Now().After(deadline) {
			t.Fatalf("no probe reached productsvc within 5 s of the breaker opening")
		}
		_ = write()
		time.Sleep(50 * time.Millisecond)
	}
	b.products.Recover()
	ready := time.Now()
	for write() != nil {
		if time.Since(ready) > 40*time.Second {
			t.Fatalf("cart writes still fail 40 s after productsvc came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(ready)
	t.Logf("cart writes succeed %v after productsvc is ready again", took.Round(time.Millisecond))
	if took > 2*time.Second && !raceEnabled {
		t.Errorf("cart writes recovered %v after productsvc was ready, want within 2 s", took)
	}
}
