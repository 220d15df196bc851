package cartsvc_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// TestConcurrentRepeatsApplyOnce sends one AddCartItem 20 times at once
// with the same request_id: it is applied once and every caller gets the
// same cart.
func TestConcurrentRepeatsApplyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, withWritesInFlight(20))
	ctx := context.Background()
	mug := b.createProduct(t, "Mug", 1200)
	rid := "add-mug-1"
	const n = 20
	carts := make([]*cartv1.Cart, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := b.carts("alice").AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: mug.Id, Quantity: 2, RequestId: &rid}))
			if err == nil {
				carts[i] = resp.Msg.Cart
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("repeat %d: %v", i, errs[i])
		}
		if !proto.Equal(carts[i], carts[0]) {
			t.Errorf("repeat %d returned\n%v\nwant the first result\n%v", i, carts[i], carts[0])
		}
	}
	got := b.cart(t, "alice")
	if len(got.Items) != 1 || got.Items[0].Quantity != 2 {
		t.Fatalf("after 20 repeats the cart is %v; want one line of 2 (applied once)", got)
	}
	if n := b.count(t, "SELECT count(*) FROM request_results"); n != 1 {
		t.Errorf("%d stored results, want 1", n)
	}
}

// TestRepeatReturnsFirstResult: a repeat returns the first result even
// after the cart changed and while productsvc is down; the same id with a
// different request is refused; after 24 h the id is new again.
func TestRepeatReturnsFirstResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	pen, ink := b.createProduct(t, "Pen", 300), b.createProduct(t, "Ink", 700)
	carts := b.carts("alice")
	rid := "add-pen"
	add := func(p string, q int32) (*cartv1.Cart, error) {
		resp, err := carts.AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: p, Quantity: q, RequestId: &rid}))
		if err != nil {
			return nil, err
		}
		return resp.Msg.Cart, nil
	}
	first, err := add(pen.Id, 1)
	if err != nil {
		t.Fatal(err)
	}
	b.add(t, "alice", ink, 1)
	b.products.Stop()

	again, err := add(pen.Id, 1)
	if err != nil {
		t.Fatalf("repeat while productsvc is down: %v; want the stored result", err)
	}
	if !proto.Equal(again, first) {
		t.Errorf("repeat returned\n%v\nwant the first result\n%v", again, first)
	}
	for _, other := range []struct {
		name string
		call func() error
	}{
		{"another quantity", func() error { _, err := add(pen.Id, 2); return err }},
		{"another product", func() error { _, err := add(ink.Id, 1); return err }},
		{"another procedure", func() error {
			_, err := carts.UpdateCartItem(ctx, connect.NewRequest(&cartv1.UpdateCartItemRequest{ProductId: pen.Id, Quantity: 1, RequestId: &rid}))
			return err
		}},
	} {
		err := other.call()
		if shoptest.Code(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "request_id") {
			t.Errorf("reusing the request id for %s: %v; want InvalidArgument naming request_id", other.name, err)
		}
	}

	// UpdateCartItem needs no product data: it works with productsvc down.
	urid := "set-pen-5"
	upd := func() *cartv1.Cart {
		t.Helper()
		resp, err := carts.UpdateCartItem(ctx, connect.NewRequest(&cartv1.UpdateCartItemRequest{ProductId: pen.Id, Quantity: 5, RequestId: &urid}))
		if err != nil {
			t.Fatalf("UpdateCartItem with productsvc down: %v", err)
		}
		return resp.Msg.Cart
	}
	u1 := upd()
	if _, err := carts.RemoveCartItem(ctx, connect.NewRequest(&cartv1.RemoveCartItemRequest{ProductId: pen.Id})); err != nil {
		t.Fatal(err)
	}
	if u2 := upd(); !proto.Equal(u1, u2) {
		t.Errorf("repeated UpdateCartItem returned\n%v\nwant\n%v", u2, u1)
	}
	if c := b.cart(t, "alice"); len(c.Items) != 1 || c.Items[0].ProductId != ink.Id {
		t.Errorf("the repeated update was applied again: cart %v, want only ink", c)
	}

	// After the retention window the id is free; the janitor prunes it.
	b.clock.Advance(24*time.Hour + time.Minute)
	if _, err := carts.UpdateCartItem(ctx, connect.NewRequest(&cartv1.UpdateCartItemRequest{ProductId: ink.Id, Quantity: 3, RequestId: &rid})); err != nil {
		t.Fatalf("reusing a request id after 24 h: %v", err)
	}
	if c := b.cart(t, "alice"); len(c.Items) != 1 || c.Items[0].Quantity != 3 {
		t.Errorf("cart after reusing an expired id = %v; want 3 ink", c)
	}
	requests, _, err := b.svc.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if requests != 1 || b.count(t, "SELECT count(*) FROM request_results") != 1 {
		t.Errorf("Prune deleted %d results and left %d; want the expired one gone, the reused one kept",
			requests, b.count(t, "SELECT count(*) FROM request_results"))
	}
}

// TestMoveRepeatsApplyOnce: a repeated MoveWishlistItemToCart returns the
// first cart and wishlist, although the item has left the wishlist.
func TestMoveRepeatsApplyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, withWritesInFlight(10))
	ctx := context.Background()
	vase := b.createProduct(t, "Vase", 4000)
	wishes := b.wishlists("alice")
	if _, err := wishes.AddWishlistItem(ctx, connect.NewRequest(&cartv1.AddWishlistItemRequest{ProductId: vase.Id})); err != nil {
		t.Fatal(err)
	}
	rid := "move-vase"
	const n = 10
	resps := make([]*cartv1.MoveWishlistItemToCartResponse, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := wishes.MoveWishlistItemToCart(ctx, connect.NewRequest(&cartv1.MoveWishlistItemToCartRequest{ProductId: vase.Id, Quantity: 2, RequestId: &rid}))
			if err == nil {
				resps[i] = resp.Msg
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("move %d: %v", i, errs[i])
		}
		if !proto.Equal(resps[i], resps[0]) {
			t.Errorf("move %d returned %v, want the first result %v", i, resps[i], resps[0])
		}
	}
	if c := b.cart(t, "alice"); len(c.Items) != 1 || c.Items[0].Quantity != 2 {
		t.Errorf("cart after 10 repeated moves = %v; want 2 vases", c)
	}
	if w := b.wishlist(t, "alice"); len(w.Items) != 0 {
		t.Errorf("wishlist after the move = %v; want empty", w)
	}
}

func TestRequestIDValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	p := b.createProduct(t, "Cup", 100)
	for _, rid := range []string{"", strings.Repeat("x", 65), "bad\nid"} {
		_, err := b.carts("alice").AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: p.Id, Quantity: 1, RequestId: &rid}))
		if shoptest.Code(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "request_id") {
			t.Errorf("request_id %q: %v; want InvalidArgument naming request_id", rid, err)
		}
	}
	ok := strings.Repeat("é", 64)
	if _, err := b.carts("alice").AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: p.Id, Quantity: 1, RequestId: &ok})); err != nil {
		t.Errorf("a 64-character request_id: %v", err)
	}
}
