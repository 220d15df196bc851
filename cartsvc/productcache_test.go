package cartsvc_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"

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
