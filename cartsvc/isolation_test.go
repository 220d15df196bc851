package cartsvc_test

import (
	"context"
	"maps"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// TestAuthMatrix calls every procedure as every kind of caller: cart and
// wishlist RPCs admit user tokens only (any user, admins included, each on
// their own things), promo code RPCs admins only.
func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	prod := b.createProduct(t, "Lamp", 1500)

	calls := map[string]matrixCall{}
	for _, procs := range []map[string]matrixCall{cartCalls(b, prod.Id), wishlistCalls(b, prod.Id), promoCalls(b)} {
		maps.Copy(calls, procs)
	}
	if len(calls) != 14 {
		t.Fatalf("matrix covers %d procedures, want all 14", len(calls))
	}
	want := func(admin bool, who string) connect.Code {
		switch {
		case who == "none":
			return connect.CodeUnauthenticated
		case who == "service":
			return connect.CodePermissionDenied // service tokens never act as a user
		case admin && who != "admin":
			return connect.CodePermissionDenied
		}
		return 0
	}
	for name, c := range calls {
		for _, who := range []string{"none", "service", "alice", "admin"} {
			if got, w := shoptest.Code(c.call(who)), want(c.admin, who); got != w {
				t.Errorf("%s as %s: code %v, want %v", name, who, got, w)
			}
		}
	}
	b.tokens["garbage"] = "not-a-jwt"
	if _, err := b.carts("garbage").GetCart(ctx, connect.NewRequest(&cartv1.GetCartRequest{})); shoptest.Code(err) != connect.CodeUnauthenticated {
		t.Errorf("GetCart with a garbage token: %v, want Unauthenticated", err)
	}
}

// matrixCall is one procedure called as who; admin says whether only
// admins may call it. An error that shows the call got past auth (say
// NotFound) is reported as nil.
type matrixCall struct {
	admin bool
	call  func(who string) error
}

// cartCalls calls each CartService procedure (on productID).
func cartCalls(b *testBundle, productID string) map[string]matrixCall {
	ctx := context.Background()
	return map[string]matrixCall{
		"GetCart": {false, func(who string) error {
			_, err := b.carts(who).GetCart(ctx, connect.NewRequest(&cartv1.GetCartRequest{}))
			return err
		}},
		"AddCartItem": {false, func(who string) error {
			_, err := b.carts(who).AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: productID, Quantity: 1}))
			return err
		}},
		"UpdateCartItem": {false, func(who string) error {
			_, err := b.carts(who).UpdateCartItem(ctx, connect.NewRequest(&cartv1.UpdateCartItemRequest{ProductId: productID, Quantity: 2}))
			if shoptest.Code(err) == connect.CodeNotFound {
				return nil // got past auth: no such line yet
			}
			return err
		}},
		"RemoveCartItem": {false, func(who string) error {
			_, err := b.carts(who).RemoveCartItem(ctx, connect.NewRequest(&cartv1.RemoveCartItemRequest{ProductId: productID}))
			return err
		}},
		"ClearCart": {false, func(who string) error {
			_, err := b.carts(who).ClearCart(ctx, connect.NewRequest(&cartv1.ClearCartRequest{}))
			return err
		}},
		"ApplyPromoCode": {false, func(who string) error {
			_, err := b.carts(who).ApplyPromoCode(ctx, connect.NewRequest(&cartv1.ApplyPromoCodeRequest{Code: "NO-SUCH-CODE"}))
			if shoptest.Code(err) == connect.CodeNotFound {
				return nil // got past auth
			}
			return err
		}},
		"RemovePromoCode": {false, func(who string) error {
			_, err := b.carts(who).RemovePromoCode(ctx, connect.NewRequest(&cartv1.RemovePromoCodeRequest{Code: "NO-SUCH-CODE"}))
			return err
		}},
	}
}

// wishlistCalls calls each WishlistService procedure (on productID).
func wishlistCalls(b *testBundle, productID string) map[string]matrixCall {
	ctx := context.Background()
	return map[string]matrixCall{
		"GetWishlist": {false, func(who string) error {
			_, err := b.wishlists(who).GetWishlist(ctx, connect.NewRequest(&cartv1.GetWishlistRequest{}))
			return err
		}},
		"AddWishlistItem": {false, func(who string) error {
			_, err := b.wishlists(who).AddWishlistItem(ctx, connect.NewRequest(&cartv1.AddWishlistItemRequest{ProductId: productID}))
			return err
		}},
		"RemoveWishlistItem": {false, func(who string) error {
			_, err := b.wishlists(who).RemoveWishlistItem(ctx, connect.NewRequest(&cartv1.RemoveWishlistItemRequest{ProductId: productID}))
			return err
		}},
		"MoveWishlistItemToCart": {false, func(who string) error {
			_, err := b.wishlists(who).MoveWishlistItemToCart(ctx, connect.NewRequest(&cartv1.MoveWishlistItemToCartRequest{ProductId: productID, Quantity: 1}))
			if shoptest.Code(err) == connect.CodeNotFound {
				return nil // got past auth: not on the wishlist
			}
			return err
		}},
	}
}

// promoCalls calls each PromoCodeService procedure.
func promoCalls(b *testBundle) map[string]matrixCall {
	ctx := context.Background()
	return map[string]matrixCall{
		// Promo code writes use arguments that fail validation, so an admin
		// call proves it got past auth without changing anything.
		"CreatePromoCode": {true, func(who string) error {
			_, err := b.promos(who).CreatePromoCode(ctx, connect.NewRequest(&cartv1.CreatePromoCodeRequest{}))
			if shoptest.Code(err) == connect.CodeInvalidArgument {
				return nil
			}
			return err
		}},
		"ListPromoCodes": {true, func(who string) error {
			_, err := b.promos(who).ListPromoCodes(ctx, connect.NewRequest(&cartv1.ListPromoCodesRequest{}))
			return err
		}},
		"DeactivatePromoCode": {true, func(who string) error {
			_, err := b.promos(who).DeactivatePromoCode(ctx, connect.NewRequest(&cartv1.DeactivatePromoCodeRequest{Code: "NO-SUCH-CODE"}))
			if shoptest.Code(err) == connect.CodeNotFound {
				return nil
			}
			return err
		}},
	}
}

// TestIsolation lets Bob call every cart and wishlist RPC against Alice's
// products, promo code and request ids: none of it reads or changes
// Alice's cart or wishlist.
func TestIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	shoes, socks, hat := b.createProduct(t, "Shoes", 8000), b.createProduct(t, "Socks", 500), b.createProduct(t, "Hat", 2000)
	b.createPromo(t, &cartv1.CreatePromoCodeRequest{Code: "ALICE10", Discount: &cartv1.CreatePromoCodeRequest_PercentOff{PercentOff: 10}, MaxRedemptions: 1})

	// Alice's things.
	rid := "alice-request-1"
	if _, err := b.carts("alice").AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: shoes.Id, Quantity: 1, RequestId: &rid})); err != nil {
		t.Fatal(err)
	}
	b.add(t, "alice", socks, 3)
	if _, err := b.carts("alice").ApplyPromoCode(ctx, connect.NewRequest(&cartv1.ApplyPromoCodeRequest{Code: "alice10"})); err != nil {
		t.Fatal(err)
	}
	if _, err := b.wishlists("alice").AddWishlistItem(ctx, connect.NewRequest(&cartv1.AddWishlistItemRequest{ProductId: hat.Id})); err != nil {
		t.Fatal(err)
	}
	aliceCart, aliceWishlist := b.cart(t, "alice"), b.wishlist(t, "alice")
	if len(aliceCart.Items) != 2 || len(aliceCart.PromoCodes) != 1 || len(aliceWishlist.Items) != 1 {
		t.Fatalf("Alice's cart %v and wishlist %v; want 2 lines, 1 code, 1 wish", aliceCart, aliceWishlist)
	}

	// Bob sees nothing of hers.
	if c := b.cart(t, "bob"); len(c.Items) != 0 || len(c.PromoCodes) != 0 || c.Total.GetAmountMinor() != 0 {
		t.Errorf("Bob's cart = %v; want empty", c)
	}
	if w := b.wishlist(t, "bob"); len(w.Items) != 0 {
		t.Errorf("Bob's wishlist = %v; want empty", w)
	}
	// Bob cannot change her lines, code or wishlist: they are not his.
	bobCarts, bobWishes := b.carts("bob"), b.wishlists("bob")
	_, err := bobCarts.UpdateCartItem(ctx, connect.NewRequest(&cartv1.UpdateCartItemRequest{ProductId: shoes.Id, Quantity: 7}))
	if shoptest.Code(err) != connect.CodeNotFound {
		t.Errorf("Bob updating Alice's line: %v, want NotFound", err)
	}
	_, err = bobWishes.MoveWishlistItemToCart(ctx, connect.NewRequest(&cartv1.MoveWishlistItemToCartRequest{ProductId: hat.Id, Quantity: 1}))
	if shoptest.Code(err) != connect.CodeNotFound {
		t.Errorf("Bob moving Alice's wish: %v, want NotFound", err)
	}
	// The code is limited to one cart, which is Alice's.
	_, err = bobCarts.ApplyPromoCode(ctx, connect.NewRequest(&cartv1.ApplyPromoCodeRequest{Code: "ALICE10"}))
	if shoptest.Code(err) != connect.CodeResourceExhausted {
		t.Errorf("Bob applying a code Alice holds, limit 1: %v, want ResourceExhausted", err)
	}
	mustOK := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("Bob %s: %v", what, err)
		}
	}
	_, err = bobCarts.RemoveCartItem(ctx, connect.NewRequest(&cartv1.RemoveCartItemRequest{ProductId: socks.Id}))
	mustOK("removing Alice's product from his cart", err)
	_, err = bobCarts.RemovePromoCode(ctx, connect.NewRequest(&cartv1.RemovePromoCodeRequest{Code: "ALICE10"}))
	mustOK("removing Alice's code from his cart", err)
	_, err = bobCarts.ClearCart(ctx, connect.NewRequest(&cartv1.ClearCartRequest{}))
	mustOK("clearing his cart", err)
	_, err = bobWishes.RemoveWishlistItem(ctx, connect.NewRequest(&cartv1.RemoveWishlistItemRequest{ProductId: hat.Id}))
	mustOK("removing Alice's wish from his wishlist", err)
	// Bob's request ids are his own: Alice's id names nothing of his.
	resp, err := bobCarts.AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: hat.Id, Quantity: 4, RequestId: &rid}))
	mustOK("adding with Alice's request id", err)
	if err == nil && (len(resp.Msg.Cart.Items) != 1 || resp.Msg.Cart.Items[0].ProductId != hat.Id || resp.Msg.Cart.Items[0].Quantity != 4) {
		t.Errorf("Bob's add with Alice's request id returned %v; want his own cart with 4 hats", resp.Msg.Cart)
	}
	_, err = bobWishes.AddWishlistItem(ctx, connect.NewRequest(&cartv1.AddWishlistItemRequest{ProductId: shoes.Id}))
	mustOK("wishing for shoes", err)
	_, err = bobCarts.GetCart(ctx, connect.NewRequest(&cartv1.GetCartRequest{}))
	mustOK("reading his cart", err)

	// Alice's things are exactly as they were.
	if got := b.cart(t, "alice"); !proto.Equal(got, aliceCart) {
		t.Errorf("after Bob's calls Alice's cart is\n%v\nwant\n%v", got, aliceCart)
	}
	if got := b.wishlist(t, "alice"); !proto.Equal(got, aliceWishlist) {
		t.Errorf("after Bob's calls Alice's wishlist is\n%v\nwant\n%v", got, aliceWishlist)
	}
}
