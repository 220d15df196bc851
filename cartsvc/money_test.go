package cartsvc_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// TestPercentDiscountRoundsHalfEven: percent discounts are rounded half to
// even on the subtotal.
func TestPercentDiscountRoundsHalfEven(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createPromo(t, percentOff("ONE", 1, 0))
	for _, c := range []struct {
		who             string
		price           int64
		quantity        int32
		discount, total int64
	}{
		{"alice", 250, 1, 2, 248}, // 2.5 → 2
		{"bob", 350, 1, 4, 346},   // 3.5 → 4
		{"admin", 125, 3, 4, 371}, // 3.75 → 4
	} {
		b.add(t, c.who, b.createProduct(t, "Thing", c.price), c.quantity)
		cart, err := b.apply(c.who, "ONE")
		if err != nil {
			t.Fatal(err)
		}
		if cart.Discount.GetAmountMinor() != c.discount || cart.Total.GetAmountMinor() != c.total || cart.PromoCodes[0].Discount.GetAmountMinor() != c.discount {
			t.Errorf("1%% of %d × %d: discount %d, total %d; want %d and %d", c.quantity, c.price, cart.Discount.GetAmountMinor(), cart.Total.GetAmountMinor(), c.discount, c.total)
		}
	}
}

// TestTotalNeverBelowZero: an amount off larger than the subtotal takes
// the subtotal off, no more, also when lines go away after the code was
// applied.
func TestTotalNeverBelowZero(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.createPromo(t, amountOff("BIG", 5000))
	gum := b.createProduct(t, "Gum", 150)
	b.add(t, "alice", gum, 2)
	c, err := b.apply("alice", "big")
	if err != nil {
		t.Fatal(err)
	}
	if c.Subtotal.GetAmountMinor() != 300 || c.Discount.GetAmountMinor() != 300 || c.Total.GetAmountMinor() != 0 {
		t.Errorf("50.00 off a 3.00 cart: %v; want 3.00 off, total 0", c)
	}
	resp, err := b.carts("alice").RemoveCartItem(ctx, connect.NewRequest(&cartv1.RemoveCartItemRequest{ProductId: gum.Id}))
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.Msg.Cart; c.Discount.GetAmountMinor() != 0 || c.Total.GetAmountMinor() != 0 || len(c.PromoCodes) != 1 {
		t.Errorf("empty cart holding BIG = %v; want the code kept, 0 discount, total 0", c)
	}
	for _, m := range []interface{ GetCurrencyCode() string }{c.Subtotal, c.Discount, c.Total, c.Items[0].LineTotal} {
		if m.GetCurrencyCode() != "EUR" {
			t.Errorf("amount in %q, want EUR", m.GetCurrencyCode())
		}
	}
}

// TestLargestCartDoesNotOverflow fills a cart with 100 lines of 999 at the
// largest price: totals are exact, and the 101st product is refused.
func TestLargestCartDoesNotOverflow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const maxPrice = 100_000_000_000
	var c *cartv1.Cart
	for i := range 100 {
		c = b.add(t, "alice", b.createProduct(t, "Jewel", maxPrice), 999)
		_ = i
	}
	if want := int64(100 * 999 * maxPrice); c.Subtotal.GetAmountMinor() != want || c.Total.GetAmountMinor() != want {
		t.Errorf("subtotal %d, total %d; want %d", c.Subtotal.GetAmountMinor(), c.Total.GetAmountMinor(), want)
	}
	b.createPromo(t, percentOff("HALF", 50, 0))
	if c, err := b.apply("alice", "HALF"); err != nil || c.Total.GetAmountMinor() != 100*999*maxPrice/2 {
		t.Errorf("50%% off the largest cart: %v, %v", c.GetTotal(), err)
	}
	extra := b.createProduct(t, "One too many", 1)
	before := b.products.Calls()
	_, err := b.carts("alice").AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: extra.Id, Quantity: 1}))
	if shoptest.Code(err) != connect.CodeResourceExhausted {
		t.Errorf("a 101st product: %v, want ResourceExhausted", err)
	}
	if b.products.Calls() != before {
		t.Errorf("a 101st product was looked up in productsvc; a full cart is refused first")
	}
}

// TestQuantityRules: quantities are 1..999 per line (0 removes on update),
// and adding beyond 999 is refused naming quantity.
func TestQuantityRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	nail := b.createProduct(t, "Nail", 5)
	carts := b.carts("alice")
	add := func(q int32) error {
		_, err := carts.AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: nail.Id, Quantity: q}))
		return err
	}
	update := func(id string, q int32) (*cartv1.Cart, error) {
		resp, err := carts.UpdateCartItem(ctx, connect.NewRequest(&cartv1.UpdateCartItemRequest{ProductId: id, Quantity: q}))
		if err != nil {
			return nil, err
		}
		return resp.Msg.Cart, nil
	}
	invalid := func(what string, err error, field string) {
		t.Helper()
		if shoptest.Code(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v; want InvalidArgument naming %s", what, err, field)
		}
	}
	invalid("adding 0", add(0), "quantity")
	invalid("adding -1", add(-1), "quantity")
	invalid("adding 1000", add(1000), "quantity")
	_, err := carts.AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: "not-a-uuid", Quantity: 1}))
	invalid("a malformed product id", err, "product_id")
	if _, err := update(nail.Id, 3); shoptest.Code(err) != connect.CodeNotFound {
		t.Errorf("updating a line that is not there: %v, want NotFound", err)
	}
	if err := add(998); err != nil {
		t.Fatal(err)
	}
	if err := add(1); err != nil {
		t.Fatalf("adding up to 999: %v", err)
	}
	invalid("adding beyond 999", add(1), "quantity")
	_, err = update(nail.Id, 1000)
	invalid("updating to 1000", err, "quantity")
	if c, err := update(nail.Id, 7); err != nil || c.Items[0].Quantity != 7 || c.Subtotal.GetAmountMinor() != 35 {
		t.Errorf("updating to 7: %v, %v", c, err)
	}
	if c, err := update(nail.Id, 0); err != nil || len(c.Items) != 0 {
		t.Errorf("updating to 0: %v, %v; want the line removed", c, err)
	}
	if _, err := update(nail.Id, 0); err != nil {
		t.Errorf("updating an absent line to 0: %v, want a no-op", err)
	}
}
