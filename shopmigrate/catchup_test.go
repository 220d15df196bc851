package shopmigrate

import (
	"strings"
	"testing"
)

// TestCatchUpCopiesOnlyChanges splits, then changes the legacy database as
// its users would (a price, a category name, a deletion, new and removed
// lines, a new user with a cart), and runs the split again: a catch-up
// pass that copies those changes only, bumps the changed products'
// versions on both sides as events would, and verifies. The pass's time
// is the write freeze a cut-over needs for this many changes.
func TestCatchUpCopiesOnlyChanges(t *testing.T) {
	t.Parallel()
	b := setup(t, SmallSize)
	first := split(t, b.cfg)

	var repriced, gone, removed int64
	if err := b.legacy.QueryRow(t.Context(), `SELECT i.product_id, (SELECT j.product_id FROM cart_items j JOIN products p ON p.id = j.product_id
		WHERE j.cart_id = 2 AND p.deleted_at IS NULL ORDER BY j.id LIMIT 1),
		(SELECT k.product_id FROM cart_items k WHERE k.cart_id = 3 ORDER BY k.id LIMIT 1)
		FROM cart_items i JOIN products p ON p.id = i.product_id WHERE i.cart_id = 1 AND p.deleted_at IS NULL ORDER BY i.id LIMIT 1`).
		Scan(&repriced, &gone, &removed); err != nil {
		t.Fatal(err)
	}
	execSQL(t, b.legacy, `UPDATE products SET price = 12.34 WHERE id = $1`, repriced)
	execSQL(t, b.legacy, `UPDATE products SET deleted_at = now() WHERE id = $1`, gone)
	execSQL(t, b.legacy, `UPDATE categories SET name = 'Renamed seven' WHERE id = 7`)
	execSQL(t, b.legacy, `DELETE FROM cart_items WHERE cart_id = 3 AND product_id = $1`, removed)
	execSQL(t, b.legacy, `INSERT INTO products (sku, name, category_id, price) VALUES ('NEW-1', 'Brand new', 1, 5.00)`)
	execSQL(t, b.legacy, `INSERT INTO users (email) VALUES ('newcomer@example.com')`)
	execSQL(t, b.legacy, `INSERT INTO carts (user_id) SELECT id FROM users WHERE email = 'newcomer@example.com'`)
	execSQL(t, b.legacy, `INSERT INTO cart_items (cart_id, product_id, quantity, unit_price)
		SELECT c.id, p.id, 3, 5.00 FROM carts c JOIN users u ON u.id = c.user_id, products p WHERE u.email = 'newcomer@example.com' AND p.sku = 'NEW-1'`)
	execSQL(t, b.legacy, `UPDATE promo_codes SET active = false WHERE id = 1`)

	catchUp := split(t, b.cfg)
	t.Logf("first pass %.2fs; catch-up pass (the write freeze at cut-over) %.2fs, %d rows changed", first.Seconds, catchUp.Seconds, catchUp.Changed)
	if catchUp.Pass != 2 || !catchUp.Verified || catchUp.Changed == 0 {
		t.Fatalf("catch-up: pass %d, verified %t, changed %d; want pass 2, verified, changes", catchUp.Pass, catchUp.Verified, catchUp.Changed)
	}
	var read int64
	for _, tr := range catchUp.Tables {
		read += tr.Read
	}
	if total := first.Tables[0].Read + first.Tables[1].Read; read >= total {
		t.Errorf("the catch-up read %d legacy rows; want only the changed ones, far fewer than the first pass's", read)
	}

	id := LegacyUUID("products", repriced)
	if got := count(t, b.product, `SELECT version * 1000000 + price_minor FROM products WHERE id = $1`, id); got != 2_001_234 {
		t.Errorf("repriced product in productsvc: version*1e6+price = %d; want version 2 at 1234", got)
	}
	if got := count(t, b.cart, `SELECT version FROM product_versions WHERE product_id = $1`, id); got != 2 {
		t.Errorf("cart's version mark of the repriced product = %d; want 2, as its event would have raised it", got)
	}
	if got := count(t, b.cart, `SELECT count(*) FROM cart_items WHERE product_id = $1 AND (unit_price_minor <> 1234 OR product_version <> 2)`, id); got != 0 {
		t.Errorf("%d cart lines of the repriced product kept the old snapshot", got)
	}
	goneID := LegacyUUID("products", gone)
	if n := count(t, b.product, `SELECT count(*) FROM products WHERE id = $1`, goneID); n != 0 {
		t.Error("the product deleted in the legacy database is still in productsvc")
	}
	if n := count(t, b.cart, `SELECT count(*) FROM cart_items WHERE product_id = $1 AND available`, goneID); n != 0 {
		t.Errorf("%d lines of the deleted product still available", n)
	}
	if n := count(t, b.product, `SELECT count(*) FROM products WHERE category_name = 'Renamed seven' AND version = 2`); n == 0 {
		t.Error("no product of the renamed category carries the new name at version 2")
	}
	if n := count(t, b.cart, `SELECT count(*) FROM cart_items WHERE user_id = 'user3@example.com' AND product_id = $1`, LegacyUUID("products", removed)); n != 0 {
		t.Error("the line removed from cart 3 is still in it")
	}
	if n := count(t, b.cart, `SELECT count(*) FROM cart_items i JOIN carts c USING (user_id) WHERE c.user_id = 'newcomer@example.com' AND i.quantity = 3`); n != 1 {
		t.Errorf("the newcomer's cart has %d lines; want the 1 added", n)
	}

	again := split(t, b.cfg)
	if again.Changed != 0 || !strings.HasPrefix(again.Outcome, "Nothing changed") || again.Pass != 3 {
		t.Errorf("a catch-up with nothing new: pass %d, changed %d, %q; want pass 3, nothing changed", again.Pass, again.Changed, again.Outcome)
	}
}

// TestCatchUpRemovesHardDeletes splits, then deletes rows from the legacy
// database for good (DELETE, which updated_at cannot show): a product
// with its lines, a category no product uses, a cart, a wishlist and a
// promo code. The catch-up pass removes each from the services' databases
// (the product with a ProductDeleted event and a tombstone in the cart's
// product_versions), reports each, and verifies; one more run changes
// nothing.
func TestCatchUpRemovesHardDeletes(t *testing.T) {
	t.Parallel()
	b := setup(t, SmallSize)
	b.cfg.Subscribers = []string{"cartsvc"}
	execSQL(t, b.legacy, `INSERT INTO categories (name) VALUES ('Spare')`)
	split(t, b.cfg)

	var product, cart, wishlist, code int64
	if err := b.legacy.QueryRow(t.Context(), `SELECT
		(SELECT min(i.product_id) FROM cart_items i JOIN products p ON p.id = i.product_id WHERE p.deleted_at IS NULL),
		(SELECT max(c.id) FROM carts c JOIN users u ON u.id = c.user_id WHERE u.deleted_at IS NULL),
		(SELECT max(id) FROM wishlists),
		(SELECT max(id) FROM promo_codes)`).Scan(&product, &cart, &wishlist, &code); err != nil {
		t.Fatal(err)
	}
	var cartOwner, wishOwner string
	if err := b.cart.QueryRow(t.Context(), `SELECT
		(SELECT subject FROM shopmigrate.users WHERE legacy_id = $1), (SELECT subject FROM shopmigrate.users WHERE legacy_id = $2)`,
		count(t, b.legacy, `SELECT user_id FROM carts WHERE id = $1`, cart),
		count(t, b.legacy, `SELECT user_id FROM wishlists WHERE id = $1`, wishlist)).Scan(&cartOwner, &wishOwner); err != nil {
		t.Fatal(err)
	}
	var promo string
	if err := b.legacy.QueryRow(t.Context(), `SELECT upper(code) FROM promo_codes WHERE id = $1`, code).Scan(&promo); err != nil {
		t.Fatal(err)
	}
	execSQL(t, b.legacy, `DELETE FROM cart_items WHERE product_id = $1`, product)
	execSQL(t, b.legacy, `DELETE FROM wishlist_items WHERE product_id = $1`, product)
	execSQL(t, b.legacy, `DELETE FROM products WHERE id = $1`, product)
	execSQL(t, b.legacy, `DELETE FROM categories WHERE name = 'Spare'`)
	execSQL(t, b.legacy, `DELETE FROM carts WHERE id = $1`, cart)
	execSQL(t, b.legacy, `DELETE FROM wishlists WHERE id = $1`, wishlist)
	execSQL(t, b.legacy, `DELETE FROM cart_promo_codes WHERE promo_code_id = $1`, code)
	execSQL(t, b.legacy, `DELETE FROM promo_codes WHERE id = $1`, code)

	rep := split(t, b.cfg)
	if !rep.Verified || rep.Pass != 2 {
		t.Fatalf("catch-up after hard deletes: pass %d, verified %t; want pass 2, verified", rep.Pass, rep.Verified)
	}
	reported := map[string]int{}
	for _, p := range rep.Problems {
		if p.Kind == "hard-deleted" {
			reported[p.Table]++
		}
	}
	for _, table := range []string{"products", "categories", "carts", "wishlists", "promo_codes"} {
		if reported[table] != 1 {
			t.Errorf("%d hard deletes of %s reported; want 1 (all: %v)", reported[table], table, reported)
		}
	}
	pid := LegacyUUID("products", product)
	if n := count(t, b.product, `SELECT count(*) FROM products WHERE id = $1`, pid); n != 0 {
		t.Error("the product deleted for good is still in productsvc")
	}
	if n := count(t, b.product, `SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND type = 'shop.events.v1.ProductDeleted'`, pid); n != 1 {
		t.Errorf("%d ProductDeleted events queued for the product deleted for good; want 1", n)
	}
	if n := count(t, b.cart, `SELECT count(*) FROM product_versions WHERE product_id = $1 AND deleted`, pid); n != 1 {
		t.Error("the cart holds no tombstone of the product deleted for good")
	}
	if n := count(t, b.product, `SELECT count(*) FROM categories WHERE name = 'Spare'`); n != 0 {
		t.Error("the category deleted for good is still in productsvc")
	}
	if n := count(t, b.cart, `SELECT count(*) FROM carts WHERE user_id = $1`, cartOwner); n != 0 {
		t.Errorf("the cart deleted for good (of %s) is still in cartsvc", cartOwner)
	}
	if n := count(t, b.cart, `SELECT count(*) FROM wishlists WHERE user_id = $1`, wishOwner); n != 0 {
		t.Errorf("the wishlist deleted for good (of %s) is still in cartsvc", wishOwner)
	}
	if n := count(t, b.cart, `SELECT count(*) FROM promo_codes WHERE code = $1`, promo); n != 0 {
		t.Errorf("the promo code %s deleted for good is still in cartsvc", promo)
	}

	again := split(t, b.cfg)
	if again.Changed != 0 || !again.Verified || !strings.HasPrefix(again.Outcome, "Nothing changed") {
		t.Errorf("a run after the sweep: changed %d, verified %t, %q; want nothing changed", again.Changed, again.Verified, again.Outcome)
	}
}
