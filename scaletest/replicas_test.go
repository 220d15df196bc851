package scaletest_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/shopload"
)

// TestLongReplicas: 2 productsvc and 3 cartsvc replicas, one PostgreSQL
// through PgBouncer in transaction mode, clients balanced round robin over
// ready replicas. Mixed traffic at 100 requests/s plus a price storm (8
// admins changing prices as fast as they are answered). Then every event
// reached cartsvc exactly once (inbox rows per product version) and every
// cart line holds its product's final price; no acknowledged cart write is
// lost or applied twice; the replicas together accepted no more events
// than the documented limit (events-rate × seconds + replicas × burst, in
// every window); both relays delivered a share of the events. Last, 30
// price changes are probed on every cartsvc replica: how long after
// UpdateProduct answered each replica's cart shows the new price (its
// product cache invalidated), which must stay far below the cache's TTL;
// and one user flooding their cart through the balancer gets no more than
// the per-replica user limit times the replicas.
func TestLongReplicas(t *testing.T) {
	long(t)
	f := startFleet(t)
	var a answers
	ctx := context.Background()
	const loadFor, stormFor = 30 * time.Second, 15 * time.Second
	began := time.Now()
	var storm *shopload.Stats
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(5 * time.Second)
		storm = shopload.Closed(ctx, 8, stormFor, 1_000_000, 10*time.Second,
			f.shop.UpdateProduct(f.shop.CartProductIDs, shopload.RetryTransient, func(shopload.Ack) {
				f.mu.Lock()
				f.updated++
				f.mu.Unlock()
			}))
	})
	load := shopload.Open(ctx, shopload.OpenConfig{Rate: 100, Duration: loadFor, MaxInFlight: 256, Timeout: 10 * time.Second, OnResult: a.record}, f.mix())
	wg.Wait()
	drained := f.waitDelivered(t, relayLease+90*time.Second)
	all, failed := a.totals()
	t.Logf("mixed load %s at 100/s: %d requests (%d not sent: too many waiting), %d failed; answers:\n%s", loadFor, all, load.Skipped, failed, a.String())
	t.Logf("price storm: %d UpdateProduct answered in %s (%.0f/s), %d failed", storm.OK+storm.Failed, storm.Elapsed.Round(time.Millisecond), storm.RPS(), storm.Failed)
	t.Logf("outbox empty %s after the load ended (%s after it began)", drained.Round(time.Millisecond), time.Since(began).Round(time.Second))
	t.Logf("requests per replica (balancer): productsvc %v, cartsvc %v; cartsvc → productsvc %v; relays → cartsvc %v",
		f.lb.Sent("productsvc"), f.lb.Sent("cartsvc"), f.st.ProductProxy.Balancer.Sent("upstream"), f.st.CartProxy.Balancer.Sent("upstream"))
	// A write whose client retried Unavailable or ResourceExhausted until
	// its 10 s deadline ends with that answer: the machine was overloaded,
	// not a replica failing. Anything else is a failure.
	gaveUp := a.count("AddCartItem", "resource_exhausted", "unavailable")
	if other := failed - gaveUp - a.count("UpdateProduct", "resource_exhausted", "unavailable"); other > 0 {
		t.Errorf("%d requests failed other than writes retried until their deadline, want 0 (reads go to ready replicas): %v", other, a.failed)
	}

	d := f.checkExactlyOnce(t)
	acked := f.checkCartWrites(t, gaveUp)
	t.Logf("events: %d product versions made since events were on, %d received by cartsvc (outcomes %v); %d cart adds acknowledged", d.events, d.received, d.outcomes, acked)
	if d.events < 500 {
		t.Errorf("only %d events in the storm; want at least 500 for the figures to mean something", d.events)
	}

	checkEventRate(t, f)

	shares, failedCalls := f.relayWork(t)
	var total float64
	for _, s := range shares {
		total += s
	}
	for i, s := range shares {
		t.Logf("relay of productsvc replica %d: %.0f event deliveries (%.1f%% of %.0f), %.0f calls failed as a whole (rate limit)", i+1, s, percent(s, total), total, failedCalls[i])
	}
	for i, s := range shares {
		if percent(s, total) <= 20 {
			t.Errorf("relay of productsvc replica %d delivered %.1f%% of the events, want more than 20%% (both relays deliver)", i+1, percent(s, total))
		}
	}

	delays := probeInvalidation(t, f, 30)
	slices.Sort(delays)
	p := func(q float64) time.Duration {
		return delays[int(q*float64(len(delays)-1))].Round(100 * time.Microsecond)
	}
	t.Logf("cache invalidation: UpdateProduct answered → a cartsvc replica's GetCart shows the new price: p50 %s, p90 %s, max %s (%d samples: 30 changes × %d replicas, each polled every %s; the cache's TTL is 30 s)",
		p(0.5), p(0.9), p(1), len(delays), cartReplicas, probeEvery)
	if max := delays[len(delays)-1]; max > 5*time.Second {
		t.Errorf("a replica showed a price %s after the change was acknowledged; want under 5 s (events invalidate the cache on every replica, not its 30 s TTL)", max)
	}

	checkUserRate(t, f)
}

// checkEventRate asserts that the cartsvc replicas together accepted no
// more events than docs/EVENTS.md allows one caller: in any window of W
// seconds, events-rate × W plus every replica's full bucket.
func checkEventRate(t *testing.T, f *fleet) {
	t.Helper()
	var times []time.Time
	query(t, f.st.CartDB, "SELECT receive_time FROM inbox ORDER BY receive_time", func(rows pgx.Rows) error {
		var at time.Time
		err := rows.Scan(&at)
		times = append(times, at)
		return err
	})
	if len(times) == 0 {
		t.Fatal("no events received")
	}
	span := times[len(times)-1].Sub(times[0])
	t.Logf("events accepted: %d in %s, %.0f/s on average; --events-rate %d (all replicas), burst %d per replica",
		len(times), span.Round(time.Millisecond), float64(len(times))/span.Seconds(), eventsRate, eventsBurst)
	for _, w := range []time.Duration{time.Second, 5 * time.Second, 10 * time.Second, span} {
		most, j := 0, 0
		for i := range times {
			for times[i].Sub(times[j]) > w {
				j++
			}
			most = max(most, i-j+1)
		}
		allowed := eventsRate*w.Seconds() + cartReplicas*eventsBurst
		t.Logf("  most accepted in a %s window: %d of %.0f allowed (%.2f)", w.Round(time.Millisecond), most, allowed, float64(most)/allowed)
		if float64(most) > allowed {
			t.Errorf("%d events accepted in %s, over the documented %.0f (events-rate × seconds + %d replicas × %d burst)", most, w, allowed, cartReplicas, eventsBurst)
		}
	}
}

// probeEvery is how often a probe asks each replica for the cart: the
// per-user limit (20 requests/s per replica) allows no more, so it is the
// measurement's resolution.
const probeEvery = 60 * time.Millisecond

// probeInvalidation changes the price of n products in users' carts, one
// at a time, each cached on every cartsvc replica beforehand, and returns
// for each change and replica how long after UpdateProduct answered that
// replica's GetCart showed the new price.
func probeInvalidation(t *testing.T, f *fleet, n int) []time.Duration {
	t.Helper()
	ctx := context.Background()
	var carts []cartv1connect.CartServiceClient
	for _, p := range f.st.CartProcs() {
		carts = append(carts, cartv1connect.NewCartServiceClient(shopload.NewHTTPClient(2), p.URL()))
	}
	// price is the product's price in the user's cart on c, or -1 while
	// the user's request limit says to wait.
	price := func(c cartv1connect.CartServiceClient, user shopload.User, id string) (int64, error) {
		req := connect.NewRequest(&cartv1.GetCartRequest{})
		req.Header().Set("Authorization", user.Auth)
		resp, err := c.GetCart(ctx, req)
		if connect.CodeOf(err) == connect.CodeResourceExhausted {
			return -1, nil
		}
		if err != nil {
			return 0, err
		}
		for _, it := range resp.Msg.GetCart().GetItems() {
			if it.GetProductId() == id {
				return it.GetUnitPrice().GetAmountMinor(), nil
			}
		}
		return 0, fmt.Errorf("product %s not in the cart of %s", id, user.Name)
	}
	var delays []time.Duration
	for i := range n {
		user := f.shop.Users[i%len(f.shop.Users)]
		id := user.Lines[i%len(user.Lines)]
		for _, c := range carts {
			if _, err := price(c, user, id); err != nil { // cached now
				t.Fatal(err)
			}
		}
		want := int64(900_000 + i)
		req := connect.NewRequest(&productv1.UpdateProductRequest{
			Product:    &productv1.Product{Id: id, Price: &typev1.Money{CurrencyCode: "EUR", AmountMinor: want}},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
		})
		req.Header().Set("Authorization", f.shop.AdminAuth)
		if _, err := f.shop.Clients.Products.UpdateProduct(ctx, req); err != nil {
			t.Fatalf("UpdateProduct: %v", err)
		}
		acked := time.Now()
		seen := make([]time.Duration, len(carts))
		var wg sync.WaitGroup
		for r, c := range carts {
			wg.Go(func() {
				for {
					got, err := price(c, user, id)
					if err != nil {
						t.Error(err)
						return
					}
					if got == want {
						seen[r] = time.Since(acked)
						return
					}
					if time.Since(acked) > 40*time.Second {
						t.Errorf("cartsvc replica %d still shows the old price of %s 40 s after the change", r+1, id)
						return
					}
					time.Sleep(probeEvery)
				}
			})
		}
		wg.Wait()
		if slices.Contains(seen, 0) {
			t.FailNow() // a probe failed, and said why
		}
		delays = append(delays, seen...)
	}
	return delays
}

// The per-user request limit of every cartsvc replica (cartsvc's
// --user-rate and --user-burst defaults), documented per replica.
const (
	userRate  = 20
	userBurst = 40
)

// checkUserRate has one user ask for their cart as fast as 8 clients can
// through the balancer for 3 s: the replicas together answer at most
// replicas × (rate × seconds + burst), and refuse the rest with
// ResourceExhausted.
func checkUserRate(t *testing.T, f *fleet) {
	t.Helper()
	user := f.shop.Users[0]
	msg := &cartv1.GetCartRequest{}
	stats := shopload.Closed(context.Background(), 8, 3*time.Second, 1_000_000, 10*time.Second, func(ctx context.Context, _ *shopload.Worker) error {
		req := connect.NewRequest(msg)
		req.Header().Set("Authorization", user.Auth)
		_, err := f.shop.Clients.Cart.GetCart(ctx, req)
		return err
	})
	allowed := cartReplicas * (userRate*stats.Elapsed.Seconds() + userBurst)
	t.Logf("one user flooding GetCart through the balancer for %s: %d answered, %.0f allowed (%d replicas × (%d/s + burst %d), documented per replica), refused %v",
		stats.Elapsed.Round(time.Millisecond), stats.OK, allowed, cartReplicas, userRate, userBurst, stats.Errors)
	if float64(stats.OK) > allowed {
		t.Errorf("%d of one user's requests answered in %s, over the documented %.0f", stats.OK, stats.Elapsed, allowed)
	}
	if stats.Errors["resource_exhausted"] == 0 {
		t.Errorf("no request of the flooding user refused (ResourceExhausted); want the limit to bite: %v", stats.Errors)
	}
}
