package cartsvc_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
	"github.com/decoupledshop/shop/internal/pgtest"
)

// A cart or wishlist write that read a product before an event brought the
// line to a newer version never puts the older snapshot back: the add
// counts, the line keeps the event's name, price and version.
func TestAWriteNeverRegressesASnapshot(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t, pgtest.CartSchema)
	q, ctx := cartdb.New(pool), context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	user, lamp := "alice", uuid.New()
	if _, err := q.LockCart(ctx, cartdb.LockCartParams{UserID: user, Now: now}); err != nil {
		t.Fatal(err)
	}
	if err := q.LockWishlist(ctx, cartdb.LockWishlistParams{UserID: user, Now: now}); err != nil {
		t.Fatal(err)
	}
	add := func(version, price int64, name string) {
		t.Helper()
		if _, err := q.AddCartLine(ctx, cartdb.AddCartLineParams{UserID: user, ProductID: lamp, Quantity: 1, Name: name,
			UnitPriceMinor: price, CurrencyCode: "EUR", ProductVersion: version, Now: now, MaxQuantity: 99, MaxLines: 50}); err != nil {
			t.Fatal(err)
		}
		if err := q.PutWishlistItem(ctx, cartdb.PutWishlistItemParams{UserID: user, ProductID: lamp, Name: name,
			PriceMinor: price, CurrencyCode: "EUR", ProductVersion: version, Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string, quantity int, version, price, added int64, name string) {
		t.Helper()
		var got struct {
			q               int
			v, p, a, wv, wp int64
			n, wn           string
		}
		if err := pool.QueryRow(ctx, `SELECT ci.quantity, ci.product_version, ci.unit_price_minor, ci.added_unit_price_minor, ci.name,
				wi.product_version, wi.price_minor, wi.name
			FROM cart_items ci JOIN wishlist_items wi USING (user_id, product_id)`).Scan(
			&got.q, &got.v, &got.p, &got.a, &got.n, &got.wv, &got.wp, &got.wn); err != nil {
			t.Fatal(err)
		}
		if got.q != quantity || got.v != version || got.p != price || got.a != added || got.n != name {
			t.Errorf("%s: cart line quantity %d, version %d, price %d (added at %d), name %q; want %d, %d, %d (%d), %q",
				when, got.q, got.v, got.p, got.a, got.n, quantity, version, price, added, name)
		}
		if got.wv != version || got.wp != price || got.wn != name {
			t.Errorf("%s: wishlist item version %d, price %d, name %q; want %d, %d, %q", when, got.wv, got.wp, got.wn, version, price, name)
		}
	}
	add(2, 1200, "Lamp v2")
	check("first add", 1, 2, 1200, 1200, "Lamp v2")
	add(1, 1000, "Lamp v1") // read before the event that brought version 2
	check("an add with an older snapshot", 2, 2, 1200, 1000, "Lamp v2")
	add(3, 1500, "Lamp v3")
	check("an add with a newer snapshot", 3, 3, 1500, 1500, "Lamp v3")
}
