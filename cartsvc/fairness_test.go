package cartsvc_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/cartsvc"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// TestOneUsersFloodDoesNotSlowOthers: while alice floods the service with
// 32 concurrent cart writes (backing off as the ResourceExhausted answers
// tell her), bob's writes' p99 stays within 2× his p99 alone. Bob writes
// as a busy user does, 20 times a second (adds and removes in turn). The
// limits are the defaults. Alone and flooded are measured in turns (A B A
// B A B), so the machine's other load falls on both alike. The figures
// print; the ratio is asserted only without the race detector.
func TestOneUsersFloodDoesNotSlowOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("measures latencies for a few seconds")
	}
	b := setup(t, withService(func(o *cartsvc.Options) { o.Users = cartsvc.UserLimits{} }))
	ctx := context.Background()
	var products []string
	for i := range 8 {
		products = append(products, b.createProduct(t, "Flood "+strconv.Itoa(i), 100).Id)
	}
	bobs := b.createProduct(t, "Bob's", 100).Id
	b.add(t, "bob", b.createProduct(t, "Warm", 100), 1)
	bob := b.carts("bob")
	// bobWrites makes n of bob's writes, 20 a second, and returns how long
	// each took.
	bobWrites := func(n int) []time.Duration {
		t.Helper()
		var took []time.Duration
		for i := range n {
			t0 := time.Now()
			var err error
			if i%2 == 0 {
				_, err = bob.AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: bobs, Quantity: int32(1 + i%5)}))
			} else {
				_, err = bob.UpdateCartItem(ctx, connect.NewRequest(&cartv1.UpdateCartItemRequest{ProductId: bobs, Quantity: 0}))
			}
			if err != nil {
				t.Fatalf("bob's write: %v", err)
			}
			took = append(took, time.Since(t0))
			time.Sleep(50*time.Millisecond - time.Since(t0))
		}
		return took
	}
	var mu sync.Mutex
	codes := map[connect.Code]int{}
	alice := b.carts(shoptest.Alice)
	// flood runs alice's 32 writers until the returned stop is called.
	flood := func() (stop func()) {
		floodCtx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for w := range 32 {
			wg.Go(func() {
				for i := 0; floodCtx.Err() == nil; i++ {
					_, err := alice.AddCartItem(floodCtx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: products[(w+i)%len(products)], Quantity: 1}))
					if floodCtx.Err() != nil {
						return
					}
					mu.Lock()
					codes[shoptest.Code(err)]++
					mu.Unlock()
					switch shoptest.Code(err) {
					case connect.CodeResourceExhausted:
						sleepCtx(floodCtx, retryAfter(err))
					case connect.CodeInvalidArgument: // the line is full
						_, _ = alice.ClearCart(floodCtx, connect.NewRequest(&cartv1.ClearCartRequest{}))
					}
				}
			})
		}
		return func() { cancel(); wg.Wait() }
	}
	bobWrites(10) // warm
	// measure returns bob's p99 alone and flooded, in turns.
	measure := func() (time.Duration, time.Duration) {
		var solo, flooded []time.Duration
		for range 3 {
			solo = append(solo, bobWrites(40)...)
			stop := flood()
			time.Sleep(200 * time.Millisecond) // the flood is on
			flooded = append(flooded, bobWrites(40)...)
			stop()
		}
		t.Logf("bob's write p99: %v alone, %v while alice floods (%.2f×); p50 %v and %v; alice's answers by code: %v",
			p99(solo).Round(time.Microsecond), p99(flooded).Round(time.Microsecond), float64(p99(flooded))/float64(p99(solo)),
			p50(solo).Round(time.Microsecond), p50(flooded).Round(time.Microsecond), codes)
		return p99(solo), p99(flooded)
	}
	// A tail latency on a shared machine is noisy, and noise only makes it
	// worse: the ratio must hold in one of two measurements.
	// Up to three measurements: on two cores shared with other test
	// packages a p99 of 120 writes is noisy; a flood that really slows bob
	// does so every time.
	solo, flooded := measure()
	for try := 1; try < 3 && flooded > 2*solo; try++ {
		solo, flooded = measure()
	}
	if !raceEnabled && flooded > 2*solo {
		t.Errorf("bob's p99 went from %v alone to %v while alice floods; want within 2×", solo, flooded)
	}
}

func p99(d []time.Duration) time.Duration { return quantile(d, 0.99) }
func p50(d []time.Duration) time.Duration { return quantile(d, 0.5) }

func quantile(d []time.Duration, q float64) time.Duration {
	d = slices.Clone(d)
	slices.Sort(d)
	return d[int(float64(len(d)-1)*q)]
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// retryAfter is the wait a ResourceExhausted answer asks for (its
// Retry-After header, in seconds, or 100 ms without one).
func retryAfter(err error) time.Duration {
	if ce, ok := err.(*connect.Error); ok {
		if s, err := strconv.ParseFloat(ce.Meta().Get("Retry-After"), 64); err == nil {
			return time.Duration(s * float64(time.Second))
		}
	}
	return 100 * time.Millisecond
}

// TestUserRateLimit: a user above the rate gets ResourceExhausted with a
// Retry-After hint; other users are not affected; a bucket refills with
// time.
func TestUserRateLimit(t *testing.T) {
	t.Parallel()
	var b *testBundle
	b = setup(t, withService(func(o *cartsvc.Options) {
		o.Users.Rate, o.Users.Burst, o.Users.Now = 1, 2, func() time.Time { return b.clock.Now() }
	}))
	ctx := context.Background()
	get := func(who string) error {
		_, err := b.carts(who).GetCart(ctx, connect.NewRequest(&cartv1.GetCartRequest{}))
		return err
	}
	for i := range 2 {
		if err := get("alice"); err != nil {
			t.Fatalf("alice's request %d within the burst: %v", i, err)
		}
	}
	err := get("alice")
	if shoptest.Code(err) != connect.CodeResourceExhausted || retryAfter(err) != time.Second {
		t.Fatalf("alice's third request: %v (Retry-After %v); want ResourceExhausted, retry after 1 s", err, retryAfter(err))
	}
	if err := get("bob"); err != nil {
		t.Errorf("bob while alice is limited: %v", err)
	}
	b.clock.Advance(time.Second)
	if err := get("alice"); err != nil {
		t.Errorf("alice a second later: %v", err)
	}
}
