package cartsvc_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/decoupledshop/shop/cartsvc"
	"github.com/decoupledshop/shop/cartsvc/productclient"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/internal/devissuer"
)

// cacheReplica is a second cartsvc replica on the bundle's database, with
// its own product client and cart cache, served on its own port.
type cacheReplica struct {
	catalog *productclient.Client
	url     string
}

// cachingReplica starts a replica with the cart cache on; listening says
// whether it runs its versions listener (without one it never uses the
// cache).
func (b *testBundle) cachingReplica(t *testing.T, listening bool) cacheReplica {
	t.Helper()
	cat, err := productclient.New(productclient.Config{BaseURL: b.products.URL(), Now: b.clock.Now, CallTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cat.Close)
	svc := cartsvc.NewService(b.cartPool, cat, cartsvc.Options{
		Now: b.clock.Now, Users: cartsvc.UserLimits{Rate: 1e9},
		CartCache: cartsvc.CartCacheConfig{MB: 1, TTL: time.Hour},
	})
	t.Cleanup(svc.Close)
	if listening {
		listen(t, svc, b.cartDBURL)
	}
	return cacheReplica{catalog: cat, url: b.serveCart(t, svc)}
}

func (r cacheReplica) carts(b *testBundle, who string) cartv1connect.CartServiceClient {
	pr := protocol(nil)
	return cartv1connect.NewCartServiceClient(pr.Client, r.url, pr.ClientOptions(b.tokens[who])...)
}

func getCart(t *testing.T, c cartv1connect.CartServiceClient) *cartv1.Cart {
	t.Helper()
	resp, err := c.GetCart(context.Background(), connect.NewRequest(&cartv1.GetCartRequest{}))
	if err != nil {
		t.Fatalf("GetCart: %v", err)
	}
	return resp.Msg.Cart
}

// quantities maps a cart's product ids to their quantities.
func quantities(c *cartv1.Cart) map[string]int32 {
	out := map[string]int32{}
	for _, it := range c.Items {
		out[it.ProductId] = it.Quantity
	}
	return out
}

// setQuantityBehindTheService changes a line in the database without a
// cart write, as no client of the service can: a cache that serves the
// cart still shows the old quantity.
func (b *testBundle) setQuantityBehindTheService(t *testing.T, who string, p *productv1.Product, quantity int32) {
	t.Helper()
	b.exec(t, "UPDATE cart_items SET quantity = $3 WHERE user_id = $1 AND product_id = $2", devissuer.Subject(who), p.Id, quantity)
}

// servedFromCache waits until c serves who's cart from its cache: a
// change of p's line behind the service's back does not show. (The line
// is left changed in the database.)
func (b *testBundle) servedFromCache(t *testing.T, c cartv1connect.CartServiceClient, who string, p *productv1.Product) {
	t.Helper()
	eventually(t, who+"'s cart served from the replica's cache", func() bool {
		before := quantities(getCart(t, c))[p.Id]
		b.setQuantityBehindTheService(t, who, p, before+1)
		return quantities(getCart(t, c))[p.Id] == before
	})
}

// cacheHits is the bundle's first replica's count of cart cache hits.
func (b *testBundle) cacheHits(t *testing.T) int {
	t.Helper()
	n, _ := strconv.Atoi(b.metric(t, `cartsvc_cart_cache_lookups_total{result="hit"}`))
	return n
}

// TestCartCacheServesAnUnchangedCart: once the versions listener has
// caught up, a second GetCart of an unchanged cart is a cache hit that
// answers what a full read answers.
func TestCartCacheServesAnUnchangedCart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p1, p2 := b.createProduct(t, "Kettle", 2500), b.createProduct(t, "Mug", 800)
	b.add(t, "alice", p1, 1)
	b.add(t, "alice", p2, 3)
	first := b.cart(t, "alice")
	eventually(t, "a cart cache hit", func() bool { b.cart(t, "alice"); return b.cacheHits(t) > 0 })
	hits := b.cacheHits(t)
	again := b.cart(t, "alice")
	if b.cacheHits(t) != hits+1 {
		t.Fatalf("hits %d → %d; want one more", hits, b.cacheHits(t))
	}
	if !proto.Equal(first, again) {
		t.Fatalf("cached cart %v; the full read gave %v", again, first)
	}
	// A changed price still shows: the cart's lines are cached, the
	// products are looked up as before.
	b.setPrice(t, p1, 2700)
	b.expireCache()
	if got := b.cart(t, "alice").Items[0].UnitPrice.AmountMinor; got != 2700 {
		t.Fatalf("price after a change = %d; want 2700", got)
	}
}

// TestCartCacheSeesEveryReplicasWrites: a replica that cached a cart reads
// it again after a write on another replica (the cart's revision moved),
// so a user always reads their own writes whichever replica answers.
func TestCartCacheSeesEveryReplicasWrites(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p1, p2 := b.createProduct(t, "Kettle", 2500), b.createProduct(t, "Mug", 800)
	b.add(t, "alice", p1, 1)
	other := b.cachingReplica(t, true)
	c := other.carts(b, "alice")
	b.servedFromCache(t, c, "alice", p1)
	b.setQuantityBehindTheService(t, "alice", p1, 5)
	b.add(t, "alice", p2, 2) // on the first replica
	got := quantities(getCart(t, c))
	if got[p1.Id] != 5 || got[p2.Id] != 2 {
		t.Fatalf("the other replica's cart after a write on the first = %v; want %s: 5, %s: 2", got, p1.Id, p2.Id)
	}
}

// TestCartCacheSeesEventsAppliedElsewhere: an event applied on one replica
// changes cart lines without a cart write; another replica that has
// heard of it (its version mark rose) reads the cart again, so with
// productsvc down it shows the line's new snapshot, not the cached one.
func TestCartCacheSeesEventsAppliedElsewhere(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.createProduct(t, "Kettle", 2500)
	b.add(t, "alice", p, 1)
	other := b.cachingReplica(t, true)
	c := other.carts(b, "alice")
	b.servedFromCache(t, c, "alice", p)
	if got := b.statusOf(t, changed(p.Id, 2, "Kettle Pro", 3100)); got != accepted {
		t.Fatalf("event = %v", got)
	}
	eventually(t, "the other replica heard of version 2", func() bool { return other.catalog.ObservedVersion(uuid.MustParse(p.Id)) == 2 })
	b.products.FailWith(connect.CodeUnavailable)
	cart := getCart(t, c)
	if it := cart.Items[0]; !cart.Stale || it.Name != "Kettle Pro" || it.UnitPrice.AmountMinor != 3100 {
		t.Fatalf("cart on the other replica with productsvc down = %v; want the stale snapshot of version 2 (Kettle Pro, 3100)", cart)
	}
}

// TestCartCacheNeedsTheListener: a replica that does not hear the other
// replicas' version marks never serves a cached cart.
func TestCartCacheNeedsTheListener(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.createProduct(t, "Kettle", 2500)
	b.add(t, "alice", p, 1)
	c := b.cachingReplica(t, false).carts(b, "alice")
	for q := range int32(5) {
		b.setQuantityBehindTheService(t, "alice", p, q+1)
		if got := quantities(getCart(t, c))[p.Id]; got != q+1 {
			t.Fatalf("read %d: quantity %d; want %d (a cached cart was served without the listener)", q, got, q+1)
		}
	}
}

// TestCartCacheKeepsNoPromoHolds: a cart holding a promo code is read in
// full every time, so deactivating the code (no cart write) takes its
// discount away at once.
func TestCartCacheKeepsNoPromoHolds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.createProduct(t, "Kettle", 2500)
	b.add(t, "alice", p, 2)
	b.createPromo(t, &cartv1.CreatePromoCodeRequest{Code: "TEN", Discount: &cartv1.CreatePromoCodeRequest_PercentOff{PercentOff: 10}})
	if _, err := b.apply("alice", "TEN"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := b.cart(t, "alice").Discount.AmountMinor; got != 500 {
			t.Fatalf("discount %d; want 500", got)
		}
	}
	if _, err := b.promos("admin").DeactivatePromoCode(context.Background(), connect.NewRequest(&cartv1.DeactivatePromoCodeRequest{Code: "TEN"})); err != nil {
		t.Fatal(err)
	}
	if got := b.cart(t, "alice"); got.Discount.AmountMinor != 0 || len(got.PromoCodes) != 0 {
		t.Fatalf("cart after the code was deactivated = %v; want no discount", got)
	}
}
