package cartsvc_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// TestWishlistAddRemoveIdempotent: adding twice keeps one item (with a
// refreshed snapshot), removing an absent one is a no-op.
func TestWishlistAddRemoveIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	kite, yoyo := b.createProduct(t, "Kite", 2500), b.createProduct(t, "Yo-yo", 300)
	wishes := b.wishlists("alice")
	add := func(id string) (*cartv1.Wishlist, error) {
		resp, err := wishes.AddWishlistItem(ctx, connect.NewRequest(&cartv1.AddWishlistItemRequest{ProductId: id}))
		if err != nil {
			return nil, err
		}
		return resp.Msg.Wishlist, nil
	}
	remove := func(id string) *cartv1.Wishlist {
		t.Helper()
		resp, err := wishes.RemoveWishlistItem(ctx, connect.NewRequest(&cartv1.RemoveWishlistItemRequest{ProductId: id}))
		if err != nil {
			t.Fatalf("RemoveWishlistItem: %v", err)
		}
		return resp.Msg.Wishlist
	}
	if _, err := add(kite.Id); err != nil {
		t.Fatal(err)
	}
	b.setPrice(t, kite, 2000)
	w, err := add(kite.Id)
	if err != nil {
		t.Fatalf("adding again: %v", err)
	}
	if len(w.Items) != 1 || w.Items[0].Price.GetAmountMinor() != 2000 || !w.Items[0].Available || w.Items[0].Name != "Kite" {
		t.Errorf("wishlist after adding the kite twice = %v; want one kite at the refreshed 20.00", w)
	}
	if w, err = add(yoyo.Id); err != nil || len(w.Items) != 2 || w.Items[0].ProductId != yoyo.Id {
		t.Errorf("wishlist after the yo-yo = %v, %v; want 2 items, newest first", w, err)
	}
	if w := remove(yoyo.Id); len(w.Items) != 1 {
		t.Errorf("after removing the yo-yo: %v", w)
	}
	if w := remove(yoyo.Id); len(w.Items) != 1 {
		t.Errorf("removing it again: %v; want a no-op", w)
	}
	if _, err := add(uuid.NewString()); shoptest.Code(err) != connect.CodeNotFound {
		t.Errorf("wishing for an unknown product: %v, want NotFound", err)
	}
	// A deleted product stays on the wishlist, unavailable, once the
	// events tell (here: the tombstone they record).
	b.deleteProduct(t, kite)
	b.exec(t, "INSERT INTO product_versions (product_id, version, deleted, update_time) VALUES ($1, $2, true, now())", kite.Id, kite.Version+2)
	if w := b.wishlist(t, "alice"); len(w.Items) != 1 || w.Items[0].Available {
		t.Errorf("wishlist with a deleted product = %v; want it unavailable", w)
	}
}

// TestMoveWishlistItemToCartIsAtomic: the wishlist item leaves only when
// the cart line is written.
func TestMoveWishlistItemToCartIsAtomic(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	drum, flute := b.createProduct(t, "Drum", 9900), b.createProduct(t, "Flute", 4500)
	wishes := b.wishlists("alice")
	for _, p := range []string{drum.Id, flute.Id} {
		if _, err := wishes.AddWishlistItem(ctx, connect.NewRequest(&cartv1.AddWishlistItemRequest{ProductId: p})); err != nil {
			t.Fatal(err)
		}
	}
	move := func(id string, q int32) (*cartv1.MoveWishlistItemToCartResponse, error) {
		resp, err := wishes.MoveWishlistItemToCart(ctx, connect.NewRequest(&cartv1.MoveWishlistItemToCartRequest{ProductId: id, Quantity: q}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	// The cart line cannot take the quantity: nothing moves.
	b.add(t, "alice", drum, 999)
	if _, err := move(drum.Id, 1); shoptest.Code(err) != connect.CodeInvalidArgument {
		t.Errorf("moving beyond 999: %v, want InvalidArgument", err)
	}
	// productsvc is unreachable: nothing moves.
	b.products.Drop()
	if _, err := move(flute.Id, 1); shoptest.Code(err) != connect.CodeUnavailable {
		t.Errorf("moving with productsvc down: %v, want Unavailable", err)
	}
	if w := b.wishlist(t, "alice"); len(w.Items) != 2 {
		t.Fatalf("after failed moves the wishlist is %v; want both items still there", w)
	}
	if c := b.cart(t, "alice"); len(c.Items) != 1 || c.Items[0].Quantity != 999 {
		t.Fatalf("after failed moves the cart is %v; want only the 999 drums", c)
	}
	b.products.Recover()
	got, err := move(flute.Id, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Wishlist.Items) != 1 || got.Wishlist.Items[0].ProductId != drum.Id || len(got.Cart.Items) != 2 || got.Cart.Items[1].Quantity != 2 {
		t.Errorf("after moving the flute: %v; want it in the cart (2) and off the wishlist", got)
	}
	if _, err := move(flute.Id, 1); shoptest.Code(err) != connect.CodeNotFound {
		t.Errorf("moving a product that is not on the wishlist: %v, want NotFound", err)
	}
	if _, err := move(drum.Id, 0); shoptest.Code(err) != connect.CodeInvalidArgument {
		t.Errorf("moving 0: %v, want InvalidArgument", err)
	}
}
