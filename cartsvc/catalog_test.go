package cartsvc_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/decoupledshop/shop/cartsvc/productclient"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// TestOneBatchCallPerGetCart: a GetCart whose products all missed the
// cache asks productsvc once for all of them; within the TTL it does not
// ask at all.
func TestOneBatchCallPerGetCart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 7 {
		b.add(t, "alice", b.createProduct(t, "Item "+strconv.Itoa(i), int64(100+i)), 1)
	}
	b.expireCache()
	before := b.products.Calls()
	c := b.cart(t, "alice")
	if got := b.products.Calls() - before; got != 1 {
		t.Errorf("GetCart with 7 cache misses made %d BatchGetProducts calls, want 1", got)
	}
	if len(c.Items) != 7 || c.Stale {
		t.Errorf("GetCart = %v; want 7 fresh lines", c)
	}
	before = b.products.Calls()
	b.cart(t, "alice")
	if got := b.products.Calls() - before; got != 0 {
		t.Errorf("GetCart within the TTL made %d calls, want 0", got)
	}
	// An empty cart makes no call.
	before = b.products.Calls()
	b.cart(t, "bob")
	if got := b.products.Calls() - before; got != 0 {
		t.Errorf("GetCart of an empty cart made %d calls, want 0", got)
	}
	// The call carries the GetCart's trace on.
	b.expireCache()
	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req := connect.NewRequest(&cartv1.GetCartRequest{})
	req.Header().Set("traceparent", trace)
	if _, err := b.carts("alice").GetCart(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := b.products.Traceparent(); !strings.HasPrefix(got, trace[:36]) {
		t.Errorf("BatchGetProducts carried traceparent %q, want one in the request's trace %s", got, trace[3:35])
	}
}

// TestConcurrentMissesShareOneFetch: eight users whose carts hold the same
// product miss the cache at once; one BatchGetProducts call serves them
// all.
func TestConcurrentMissesShareOneFetch(t *testing.T) {
	t.Parallel()
	const n = 8
	b := setup(t, withShoppers(n))
	ctx := context.Background()
	tea := b.createProduct(t, "Tea", 450)
	for i := range n {
		b.add(t, shopper(i), tea, 1)
	}
	b.expireCache()
	before, shared := b.products.Calls(), b.catalog.Stats().Shared
	b.products.Hold()
	carts := make([]*cartv1.Cart, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := b.carts(shopper(i)).GetCart(ctx, connect.NewRequest(&cartv1.GetCartRequest{}))
			if err == nil {
				carts[i] = resp.Msg.Cart
			}
			errs[i] = err
		})
	}
	eventually(t, "one fetch is held and the other lookups joined it", func() bool {
		return b.products.Held() == 1 && b.catalog.Stats().Shared-shared == n-1
	})
	b.products.Release()
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("GetCart %d: %v", i, errs[i])
		}
		if c := carts[i]; c.Stale || len(c.Items) != 1 || c.Total.GetAmountMinor() != 450 {
			t.Errorf("cart %d = %v; want one fresh tea", i, c)
		}
	}
	if got := b.products.Calls() - before; got != 1 {
		t.Errorf("%d concurrent GetCarts made %d BatchGetProducts calls, want 1", n, got)
	}
}

// TestStaleFetchIsNeitherCachedNorServed: a fetch is in flight (productsvc
// has answered with version 1) when version 2 is observed. Its result is
// not served and not cached: the cart falls back to its snapshot, marked
// stale, and the next GetCart fetches again and shows version 2.
func TestStaleFetchIsNeitherCachedNorServed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	lamp := b.createProduct(t, "Lamp", 1000)
	b.add(t, "alice", lamp, 1)
	b.expireCache()

	b.products.Hold()
	done := make(chan *cartv1.Cart, 1)
	go func() {
		resp, err := b.carts("alice").GetCart(ctx, connect.NewRequest(&cartv1.GetCartRequest{}))
		if err != nil {
			t.Errorf("GetCart: %v", err)
			done <- nil
			return
		}
		done <- resp.Msg.Cart
	}()
	eventually(t, "productsvc answered the fetch with version 1", func() bool { return b.products.Held() == 1 })
	v2 := b.setPrice(t, lamp, 1300)
	b.catalog.ObserveVersion(uuid.MustParse(lamp.Id), v2.Version) // as the event consumer will
	rejected := b.catalog.Stats().Rejected
	b.products.Release()
	c := <-done
	if c == nil {
		t.FailNow()
	}
	if got := b.catalog.Stats().Rejected - rejected; got != 1 {
		t.Errorf("%d fetched products rejected, want the 1 older than the observed version", got)
	}
	if !c.Stale || c.Items[0].UnitPrice.GetAmountMinor() != 1000 {
		t.Errorf("GetCart during the race = %v; want the snapshot (10.00), stale", c)
	}
	b.catalog.Wait()
	before := b.products.Calls()
	c = b.cart(t, "alice")
	if b.products.Calls()-before != 1 {
		t.Errorf("the next GetCart made %d calls; want 1 (version 1 must not have been cached)", b.products.Calls()-before)
	}
	if c.Stale || c.Items[0].UnitPrice.GetAmountMinor() != 1300 || !c.Items[0].PriceChanged {
		t.Errorf("next GetCart = %v; want version 2 at 13.00 with price_changed", c)
	}
}

// TestNewerVersionEvictsCachedEntry: a fresh cache entry is not served
// once a newer version is known, whether observed in memory or recorded in
// the product_versions table (by another replica's event consumer).
func TestNewerVersionEvictsCachedEntry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	chair, desk := b.createProduct(t, "Chair", 5000), b.createProduct(t, "Desk", 20000)
	b.add(t, "alice", chair, 1)
	b.add(t, "alice", desk, 1)

	chair2 := b.setPrice(t, chair, 4500)
	if c := b.cart(t, "alice"); c.Items[0].UnitPrice.GetAmountMinor() != 5000 {
		t.Fatalf("within the TTL and with no newer version known, GetCart = %v; want the cached 50.00", c)
	}
	b.catalog.ObserveVersion(uuid.MustParse(chair.Id), chair2.Version)
	b.catalog.Wait()
	before := b.products.Calls()
	if c := b.cart(t, "alice"); c.Items[0].UnitPrice.GetAmountMinor() != 4500 || c.Items[1].UnitPrice.GetAmountMinor() != 20000 {
		t.Errorf("after ObserveVersion GetCart = %v; want the chair at 45.00", c)
	}
	if got := b.products.Calls() - before; got != 1 {
		t.Errorf("GetCart after ObserveVersion made %d calls, want 1", got)
	}

	desk2 := b.setPrice(t, desk, 18000)
	b.exec(t, "INSERT INTO product_versions (product_id, version, update_time) VALUES ($1, $2, now())", desk.Id, desk2.Version)
	if c := b.cart(t, "alice"); c.Items[1].UnitPrice.GetAmountMinor() != 18000 || c.Stale {
		t.Errorf("with version %d in product_versions GetCart = %v; want the desk at 180.00", desk2.Version, c)
	}
	// A tombstone makes the line unavailable without asking productsvc.
	b.exec(t, "UPDATE product_versions SET version = version + 1, deleted = true WHERE product_id = $1", desk.Id)
	before = b.products.Calls()
	c := b.cart(t, "alice")
	if c.Items[1].Available || c.Total.GetAmountMinor() != 4500 {
		t.Errorf("with a tombstone GetCart = %v; want the desk unavailable and out of the total", c)
	}
	if got := b.products.Calls() - before; got != 0 {
		t.Errorf("GetCart made %d calls; a tombstoned product and a cached one need none", got)
	}
}

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

// TestProductsvcStopped: with productsvc stopped, GetCart answers from the
// cache where it has an entry and from line snapshots where not, with
// stale: true; writes that need product data fail with Unavailable, the
// others work.
func TestProductsvcStopped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	bread, jam := b.createProduct(t, "Bread", 300), b.createProduct(t, "Jam", 450)
	b.add(t, "alice", bread, 2)
	b.add(t, "alice", jam, 1)
	b.setPrice(t, bread, 350)
	b.expireCache()
	if c := b.cart(t, "alice"); c.Items[0].UnitPrice.GetAmountMinor() != 350 {
		t.Fatalf("GetCart = %v; want bread at its new price", c)
	}
	// Jam's cache entry goes (a newer version exists); bread's stays.
	b.catalog.ObserveVersion(uuid.MustParse(jam.Id), jam.Version+1)
	b.expireCache()
	b.products.Stop()

	c := b.cart(t, "alice")
	want := []struct {
		price int64
		what  string
	}{{350, "the cached price"}, {450, "the snapshot price"}}
	if !c.Stale || len(c.Items) != 2 {
		t.Fatalf("GetCart with productsvc stopped = %v; want both lines, stale", c)
	}
	for i, w := range want {
		if got := c.Items[i].UnitPrice.GetAmountMinor(); got != w.price || !c.Items[i].Available {
			t.Errorf("line %d (%s) at %d, want %s %d", i, c.Items[i].Name, got, w.what, w.price)
		}
	}
	if c.Total.GetAmountMinor() != 2*350+450 {
		t.Errorf("total %d, want %d", c.Total.GetAmountMinor(), 2*350+450)
	}
	_, err := b.carts("alice").AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: bread.Id, Quantity: 1}))
	if shoptest.Code(err) != connect.CodeUnavailable {
		t.Errorf("AddCartItem with productsvc stopped: %v, want Unavailable", err)
	}
	_, err = b.wishlists("alice").AddWishlistItem(ctx, connect.NewRequest(&cartv1.AddWishlistItemRequest{ProductId: bread.Id}))
	if shoptest.Code(err) != connect.CodeUnavailable {
		t.Errorf("AddWishlistItem with productsvc stopped: %v, want Unavailable", err)
	}
	resp, err := b.carts("alice").UpdateCartItem(ctx, connect.NewRequest(&cartv1.UpdateCartItemRequest{ProductId: jam.Id, Quantity: 3}))
	if err != nil {
		t.Fatalf("UpdateCartItem with productsvc stopped: %v", err)
	}
	if c := resp.Msg.Cart; !c.Stale || c.Items[1].Quantity != 3 {
		t.Errorf("UpdateCartItem returned %v; want 3 jams, stale", c)
	}
}

// TestProductsvcSlow: productsvc answering after the per-call deadline is
// treated like a stopped one, and a GetCart whose own deadline is shorter
// than productsvc's answer still gets a stale cart, not an error.
func TestProductsvcSlow(t *testing.T) {
	t.Parallel()
	b := setup(t, withCatalog(func(c *productclient.Config) {
		c.CallTimeout = 100 * time.Millisecond
		c.Retries = 1
	}))
	ctx := context.Background()
	milk := b.createProduct(t, "Milk", 120)
	b.add(t, "alice", milk, 1)
	b.expireCache()
	b.products.Slow(time.Minute)

	if c := b.cart(t, "alice"); !c.Stale || c.Total.GetAmountMinor() != 120 {
		t.Errorf("GetCart with productsvc slower than the deadline = %v; want stale", c)
	}
	_, err := b.carts("alice").AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: milk.Id, Quantity: 1}))
	if shoptest.Code(err) != connect.CodeUnavailable {
		t.Errorf("AddCartItem with productsvc slow: %v, want Unavailable", err)
	}

	slowDeadline := setup(t, withCatalog(func(c *productclient.Config) { c.CallTimeout = time.Minute }))
	honey := slowDeadline.createProduct(t, "Honey", 800)
	slowDeadline.add(t, "alice", honey, 1)
	slowDeadline.expireCache()
	slowDeadline.products.Slow(time.Minute)
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	resp, err := slowDeadline.carts("alice").GetCart(short, connect.NewRequest(&cartv1.GetCartRequest{}))
	if err != nil {
		t.Fatalf("GetCart with a 500 ms deadline and productsvc taking a minute: %v; want a stale cart", err)
	}
	if !resp.Msg.Cart.Stale || resp.Msg.Cart.Total.GetAmountMinor() != 800 {
		t.Errorf("GetCart = %v; want the stale cart", resp.Msg.Cart)
	}
}

// TestDeletedProductAndPriceChange: live data marks changed prices and
// deleted products; deleted products are left out of the totals.
func TestDeletedProductAndPriceChange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cheese, wine, bag := b.createProduct(t, "Cheese", 700), b.createProduct(t, "Wine", 1500), b.createProduct(t, "Bag", 100)
	b.add(t, "alice", cheese, 2)
	b.add(t, "alice", wine, 1)
	b.add(t, "alice", bag, 1)
	b.setPrice(t, cheese, 750)
	b.deleteProduct(t, wine)
	b.expireCache()

	c := b.cart(t, "alice")
	ch, wi, ba := c.Items[0], c.Items[1], c.Items[2]
	if !ch.PriceChanged || ch.UnitPrice.GetAmountMinor() != 750 || ch.AddedUnitPrice.GetAmountMinor() != 700 || ch.LineTotal.GetAmountMinor() != 1500 {
		t.Errorf("cheese line = %v; want price_changed, 7.50 now, 7.00 when added, 15.00 in total", ch)
	}
	if wi.Available || wi.LineTotal.GetAmountMinor() != 0 || wi.Name != "Wine" || wi.PriceChanged {
		t.Errorf("wine line = %v; want unavailable (deleted), named from the snapshot, 0 total", wi)
	}
	if ba.PriceChanged || !ba.Available {
		t.Errorf("bag line = %v; want unchanged and available", ba)
	}
	if c.Subtotal.GetAmountMinor() != 1600 || c.Total.GetAmountMinor() != 1600 || c.Stale {
		t.Errorf("subtotal %d, total %d, stale %v; want 16.00 without the wine, fresh", c.Subtotal.GetAmountMinor(), c.Total.GetAmountMinor(), c.Stale)
	}
	// Adding the deleted product again is NotFound; adding more cheese
	// takes the new price as the added price.
	_, err := b.carts("alice").AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: wine.Id, Quantity: 1}))
	if shoptest.Code(err) != connect.CodeNotFound {
		t.Errorf("adding a deleted product: %v, want NotFound", err)
	}
	c = b.add(t, "alice", cheese, 1)
	if ch := c.Items[0]; ch.Quantity != 3 || ch.PriceChanged || ch.AddedUnitPrice.GetAmountMinor() != 750 {
		t.Errorf("cheese after adding one more = %v; want 3 at the new added price, no price_changed", ch)
	}
	// Unknown products are NotFound too.
	_, err = b.carts("alice").AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: uuid.NewString(), Quantity: 1}))
	if shoptest.Code(err) != connect.CodeNotFound {
		t.Errorf("adding an unknown product: %v, want NotFound", err)
	}
}

// TestProductChangedFillsTheCache: a ProductChanged carries the product's
// full state, so after a price change the replica that applied the event
// serves the new price from its cache without asking productsvc again.
// It prints catalog calls per GetCart after price changes of every line.
func TestProductChangedFillsTheCache(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const lines = 5
	var events []*eventsv1.Event
	var products []*productv1.Product
	for i := range lines {
		p := b.createProduct(t, "Item "+strconv.Itoa(i), int64(100+i))
		b.add(t, "alice", p, 1)
		products = append(products, p)
	}
	b.cart(t, "alice") // warm
	for i, p := range products {
		p = b.setPrice(t, p, int64(200+i))
		events = append(events, changed(p.Id, p.Version, p.Name, p.Price.AmountMinor))
	}
	b.deliver(t, events...)
	b.catalog.Wait()
	before := b.products.Calls()
	c := b.cart(t, "alice")
	calls := b.products.Calls() - before
	t.Logf("catalog calls per GetCart after a price change of all %d lines: %d", lines, calls)
	if calls != 0 {
		t.Errorf("GetCart after the events made %d BatchGetProducts calls, want 0 (the events filled the cache)", calls)
	}
	for i, item := range c.Items {
		if item.UnitPrice.AmountMinor != int64(200+i) || !item.PriceChanged || c.Stale {
			t.Errorf("line %d = %v; want the new price %d, changed, not stale", i, item, 200+i)
		}
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
