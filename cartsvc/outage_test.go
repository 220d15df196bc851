package cartsvc_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/decoupledshop/shop/cartsvc/productclient"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

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
