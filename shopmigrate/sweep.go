package shopmigrate

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// A catch-up pass finds changed rows by their legacy updated_at, which a
// row deleted for good (DELETE, not the soft deleted_at) no longer has.
// So every catch-up pass also compares the keys the legacy database holds
// now with the rows earlier passes copied (shopmigrate.legacy_ids,
// shopmigrate.users, shopmigrate.promo_codes) and resolves each row gone
// from the legacy database as hardDeleteResolutions says, reporting each
// as a non-blocking problem of kind "hard-deleted". Products, categories
// and promo codes the services created themselves are in none of those
// tables and are never touched; carts and wishlists are known by their
// owner, a legacy user, so catch-up passes must run before cartsvc takes
// writes (the README's walk-through), or a cart cartsvc made for a legacy
// user without a legacy cart would go.
// Lines, wishlist items and held codes need no sweep: deleting one
// touches its cart or wishlist, whose next catch-up rewrites them all.

// hardDeleteResolutions are the resolutions of rows deleted for good, by
// legacy table.
var hardDeleteResolutions = map[string]string{
	"categories":  "deleted from productsvc (the legacy database let it go only once no product referenced it)",
	"products":    "deleted from productsvc with a ProductDeleted event, tombstoned in the cart's product_versions (recorded in shopmigrate.hard_deletes)",
	"carts":       "deleted from cartsvc with its lines and held codes",
	"wishlists":   "deleted from cartsvc with its items",
	"promo_codes": "deleted from cartsvc",
}

// sweepSQL deletes, per target, the copied rows whose legacy key is not in
// the temporary table present, returning the legacy keys.
var sweepSQL = map[string]string{
	"categories": `DELETE FROM categories c USING shopmigrate.legacy_ids m
		WHERE m.tbl = 'categories' AND m.id = c.id AND NOT EXISTS (SELECT 1 FROM present x WHERE x.legacy_id = m.legacy_id)
		AND NOT EXISTS (SELECT 1 FROM products p WHERE p.category_id = c.id)
		RETURNING m.legacy_id`,
	"carts": `DELETE FROM carts c USING shopmigrate.users u
		WHERE u.subject = c.user_id AND NOT EXISTS (SELECT 1 FROM present x WHERE x.legacy_id = u.legacy_id)
		RETURNING u.legacy_id`,
	"wishlists": `DELETE FROM wishlists w USING shopmigrate.users u
		WHERE u.subject = w.user_id AND NOT EXISTS (SELECT 1 FROM present x WHERE x.legacy_id = u.legacy_id)
		RETURNING u.legacy_id`,
	"promo_codes": `WITH gone AS (
		    DELETE FROM shopmigrate.promo_codes m
		    WHERE NOT EXISTS (SELECT 1 FROM present x WHERE x.legacy_id = m.legacy_id)
		    RETURNING m.legacy_id, m.code
		), holds AS (
		    DELETE FROM cart_promo_codes h USING gone g WHERE h.code = g.code
		)
		DELETE FROM promo_codes p USING gone g WHERE p.code = g.code
		RETURNING g.legacy_id`,
}

// sweep resolves the rows deleted for good from the legacy database since
// the pass before, in one transaction per target database, and returns
// the rows it changed.
func (m *splitter) sweep(ctx context.Context, rep *Report) (int64, error) {
	sw := &sweeper{m: m, rep: rep}
	products, err := m.lq.ListProductIDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("list legacy products: %w", err)
	}
	categories, err := m.lq.ListCategoryIDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("list legacy categories: %w", err)
	}
	if err := pgx.BeginFunc(ctx, m.product, func(tx pgx.Tx) error {
		return sw.product(ctx, tx, products, categories)
	}); err != nil {
		return 0, fmt.Errorf("product database: %w", err)
	}
	if err := pgx.BeginFunc(ctx, m.cart, func(tx pgx.Tx) error {
		return sw.cart(ctx, tx, products)
	}); err != nil {
		return 0, fmt.Errorf("cart database: %w", err)
	}
	return sw.changed, nil
}

// sweeper is one sweep: it reports what it finds in rep and counts the
// rows it changed.
type sweeper struct {
	m       *splitter
	rep     *Report
	changed int64
}

// found reports the legacy rows of table found deleted for good.
func (sw *sweeper) found(table string, ids []int64) {
	for _, id := range ids {
		sw.rep.Problems = append(sw.rep.Problems, Problem{Kind: "hard-deleted", Table: table, LegacyID: id,
			Detail:     fmt.Sprintf("deleted from the legacy database for good after a pass before pass %d", sw.rep.Pass),
			Resolution: hardDeleteResolutions[table]})
	}
	sw.changed += int64(len(ids))
}

// product deletes productsvc's products (with their ProductDeleted
// events) and categories whose legacy rows are gone.
func (sw *sweeper) product(ctx context.Context, tx pgx.Tx, products, categories []int64) error {
	if err := fillPresent(ctx, tx, products); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `DELETE FROM products p USING shopmigrate.legacy_ids m
		WHERE m.tbl = 'products' AND m.id = p.id AND NOT EXISTS (SELECT 1 FROM present x WHERE x.legacy_id = m.legacy_id)
		RETURNING m.legacy_id, p.id, p.version + 1`)
	if err != nil {
		return err
	}
	deleted, err := pgx.CollectRows(rows, pgx.RowToStructByPos[deletedProduct])
	if err != nil {
		return err
	}
	gone := make([]int64, len(deleted))
	for i, d := range deleted {
		gone[i] = d.LegacyID
		if err := sw.m.events.ProductDeleted(ctx, tx, d.ID, d.Version); err != nil {
			return err
		}
	}
	sw.found("products", gone)
	if err := fillPresent(ctx, tx, categories); err != nil {
		return err
	}
	gone, err = sweepTable(ctx, tx, "categories")
	sw.found("categories", gone)
	return err
}

// cart tombstones the cart's marks of the products gone, and deletes the
// carts, wishlists and promo codes whose legacy rows are gone.
func (sw *sweeper) cart(ctx context.Context, tx pgx.Tx, products []int64) error {
	if err := fillPresent(ctx, tx, products); err != nil {
		return err
	}
	// Tombstones, as a soft deletion's; productsvc's products were
	// reported above, so only the count of changed rows grows here.
	rows, err := tx.Query(ctx, tombstoneSQL)
	if err != nil {
		return err
	}
	raised, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err == nil {
		err = notifyVersions(ctx, tx, raised)
	}
	if err != nil {
		return err
	}
	sw.changed += int64(len(raised))
	for _, t := range []struct {
		table string
		list  func(context.Context) ([]int64, error)
	}{
		{"carts", sw.m.lq.ListCartOwners}, {"wishlists", sw.m.lq.ListWishlistOwners}, {"promo_codes", sw.m.lq.ListPromoCodeIDs},
	} {
		keys, err := t.list(ctx)
		if err != nil {
			return fmt.Errorf("list legacy %s: %w", t.table, err)
		}
		if err := fillPresent(ctx, tx, keys); err != nil {
			return err
		}
		gone, err := sweepTable(ctx, tx, t.table)
		if err != nil {
			return fmt.Errorf("%s: %w", t.table, err)
		}
		sw.found(t.table, gone)
	}
	return nil
}

// tombstoneSQL records the products gone from the legacy database (not in
// present) in shopmigrate.hard_deletes, marks their lines and wishlist
// items unavailable and raises their marks to tombstones, returning the
// raised marks ("<product id>:<version>").
const tombstoneSQL = `
WITH gone AS (
    INSERT INTO shopmigrate.hard_deletes (tbl, legacy_id, delete_time)
    SELECT 'products', m.legacy_id, now() FROM shopmigrate.legacy_ids m
    WHERE m.tbl = 'products' AND NOT EXISTS (SELECT 1 FROM present x WHERE x.legacy_id = m.legacy_id)
    ON CONFLICT DO NOTHING
    RETURNING legacy_id
), lines AS (
    UPDATE cart_items i SET available = false FROM gone g JOIN shopmigrate.legacy_ids m ON m.tbl = 'products' AND m.legacy_id = g.legacy_id
    WHERE i.product_id = m.id AND i.available
), wishes AS (
    UPDATE wishlist_items i SET available = false FROM gone g JOIN shopmigrate.legacy_ids m ON m.tbl = 'products' AND m.legacy_id = g.legacy_id
    WHERE i.product_id = m.id AND i.available
)
UPDATE product_versions v SET version = v.version + 1, deleted = true, update_time = now()
FROM gone g JOIN shopmigrate.legacy_ids m ON m.tbl = 'products' AND m.legacy_id = g.legacy_id
WHERE v.product_id = m.id AND NOT v.deleted
RETURNING v.product_id::text || ':' || v.version`

// deletedProduct is a product deleted from productsvc: its legacy id, id,
// and the version of its tombstone.
type deletedProduct struct {
	LegacyID int64
	ID       uuid.UUID
	Version  int64
}

// fillPresent (re)fills the transaction's temporary table present with
// the legacy keys ids.
func fillPresent(ctx context.Context, tx pgx.Tx, ids []int64) error {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS present (legacy_id bigint PRIMARY KEY) ON COMMIT DROP; TRUNCATE present`); err != nil {
		return err
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"present"}, []string{"legacy_id"}, pgx.CopyFromSlice(len(ids), func(i int) ([]any, error) {
		return []any{ids[i]}, nil
	}))
	if err == nil {
		_, err = tx.Exec(ctx, `ANALYZE present`)
	}
	return err
}

// sweepTable runs table's sweepSQL and returns the legacy keys it deleted.
func sweepTable(ctx context.Context, tx pgx.Tx, table string) ([]int64, error) {
	rows, err := tx.Query(ctx, sweepSQL[table])
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}
