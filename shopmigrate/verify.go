package shopmigrate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	legacydb "github.com/decoupledshop/shop/gen/sqlc/legacy"
)

// A table's checksum: its row count, and the sum of the first 60 bits of
// the MD5 of each row's text form, rows being the same columns, of the same
// types, in the same order on both sides: the legacy side's queries are
// queries/legacy/verify.sql; on the target side legacy ids come from
// shopmigrate.legacy_ids and shopmigrate.users. A sum does not depend on
// row order, so neither side sorts.
const checksumSQL = `SELECT count(*), coalesce(sum(('x' || substr(md5(q::text), 1, 15))::bit(60)::bigint), 0)::text FROM (%s) AS q`

// legacySum is a legacy checksum query's answer.
type legacySum struct {
	N        int64
	Checksum string
}

// tableCheck is how one target table is compared with the legacy rows it
// came from.
type tableCheck struct {
	table, db string
	legacy    func(context.Context, *legacydb.Queries) (legacySum, error)
	target    string
}

// sum adapts a generated checksum query to tableCheck.legacy.
func sum[R ~struct {
	N        int64
	Checksum string
}](f func(*legacydb.Queries, context.Context) (R, error)) func(context.Context, *legacydb.Queries) (legacySum, error) {
	return func(ctx context.Context, q *legacydb.Queries) (legacySum, error) {
		r, err := f(q, ctx)
		return legacySum(r), err
	}
}

// tableChecks compare every target table with the legacy database.
var tableChecks = []tableCheck{
	{"categories", "product", sum((*legacydb.Queries).ChecksumCategories),
		`SELECT m.legacy_id, c.name, c.description FROM categories c
		 LEFT JOIN shopmigrate.legacy_ids m ON m.tbl = 'categories' AND m.id = c.id`},
	{"products", "product", sum((*legacydb.Queries).ChecksumProducts),
		`SELECT m.legacy_id, p.sku, p.name, p.description, mc.legacy_id, p.category_name, p.price_minor FROM products p
		 LEFT JOIN shopmigrate.legacy_ids m ON m.tbl = 'products' AND m.id = p.id
		 LEFT JOIN shopmigrate.legacy_ids mc ON mc.tbl = 'categories' AND mc.id = p.category_id`},
	{"product_versions", "cart", sum((*legacydb.Queries).ChecksumProductVersions),
		`SELECT m.legacy_id, v.deleted FROM product_versions v
		 LEFT JOIN shopmigrate.legacy_ids m ON m.tbl = 'products' AND m.id = v.product_id
		 WHERE NOT EXISTS (SELECT 1 FROM shopmigrate.hard_deletes h WHERE h.tbl = 'products' AND h.legacy_id = m.legacy_id)`},
	{"promo_codes", "cart", sum((*legacydb.Queries).ChecksumPromoCodes),
		`SELECT code, percent_off, amount_off_minor, max_redemptions,
		     extract(epoch FROM start_time), extract(epoch FROM end_time), active FROM promo_codes`},
	{"carts", "cart", sum((*legacydb.Queries).ChecksumCarts),
		`SELECT u.legacy_id, extract(epoch FROM c.create_time), extract(epoch FROM c.update_time) FROM carts c
		 LEFT JOIN shopmigrate.users u ON u.subject = c.user_id`},
	{"cart_items", "cart", sum((*legacydb.Queries).ChecksumCartItems),
		`SELECT u.legacy_id, m.legacy_id, i.quantity, i.name, i.unit_price_minor, i.added_unit_price_minor, i.available FROM cart_items i
		 LEFT JOIN shopmigrate.users u ON u.subject = i.user_id
		 LEFT JOIN shopmigrate.legacy_ids m ON m.tbl = 'products' AND m.id = i.product_id`},
	{"wishlists", "cart", sum((*legacydb.Queries).ChecksumWishlists),
		`SELECT u.legacy_id, extract(epoch FROM w.create_time), extract(epoch FROM w.update_time) FROM wishlists w
		 LEFT JOIN shopmigrate.users u ON u.subject = w.user_id`},
	{"wishlist_items", "cart", sum((*legacydb.Queries).ChecksumWishlistItems),
		`SELECT u.legacy_id, m.legacy_id, i.name, i.price_minor, i.available FROM wishlist_items i
		 LEFT JOIN shopmigrate.users u ON u.subject = i.user_id
		 LEFT JOIN shopmigrate.legacy_ids m ON m.tbl = 'products' AND m.id = i.product_id`},
	{"cart_promo_codes", "cart", sum((*legacydb.Queries).ChecksumCartPromoCodes),
		`SELECT u.legacy_id, h.code, extract(epoch FROM h.apply_time) FROM cart_promo_codes h
		 LEFT JOIN shopmigrate.users u ON u.subject = h.user_id`},
}

// querier runs a query returning one row: a pool, a connection or a
// transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// checksum returns a query's row count and checksum on db.
func checksum(ctx context.Context, db querier, query string) (int64, string, error) {
	var n int64
	var sum string
	err := db.QueryRow(ctx, fmt.Sprintf(checksumSQL, query)).Scan(&n, &sum)
	return n, sum, err
}

// verifyParallelism bounds the checksum queries running at once.
const verifyParallelism = 4

// verify compares every table's count and checksum on both sides, fills
// them into the report's tables and sets Verified; then counts orphans.
// The queries run a few at a time: both sides, and several tables, at once.
func (m *splitter) verify(ctx context.Context, rep *Report) error {
	for _, c := range tableChecks {
		tableFor(rep, c.table, c.db) // every entry first: appending moves them
	}
	trs := make([]*TableReport, len(tableChecks))
	for i, c := range tableChecks {
		trs[i] = tableFor(rep, c.table, c.db)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(verifyParallelism)
	for i, c := range tableChecks {
		tr := trs[i]
		g.Go(func() error {
			got, err := c.legacy(gctx, m.lq)
			if err != nil {
				return fmt.Errorf("verify %s (legacy): %w", c.table, err)
			}
			tr.LegacyRows, tr.LegacyChecksum = got.N, got.Checksum
			return nil
		})
		g.Go(func() (err error) {
			if tr.TargetRows, tr.TargetChecksum, err = checksum(gctx, m.db(c.db), c.target); err != nil {
				return fmt.Errorf("verify %s (%s): %w", c.table, c.db, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	rep.Verified = true
	for _, tr := range trs {
		tr.Match = tr.LegacyRows == tr.TargetRows && tr.LegacyChecksum == tr.TargetChecksum
		rep.Verified = rep.Verified && tr.Match
		if tr.PlainCopyRowsPerSecond > 0 {
			tr.Ratio = tr.RowsPerSecond / tr.PlainCopyRowsPerSecond
		}
	}
	return m.orphans(ctx, rep, true)
}

// tableFor returns the report's entry for table, adding it if missing.
func tableFor(rep *Report, table, db string) *TableReport {
	for i := range rep.Tables {
		if rep.Tables[i].Table == table {
			return &rep.Tables[i]
		}
	}
	rep.Tables = append(rep.Tables, TableReport{Table: table, Database: db})
	return &rep.Tables[len(rep.Tables)-1]
}

// orphans counts the legacy rows whose parent is soft-deleted and says
// where they went; with target, it counts them on the target side too and
// says whether all arrived.
func (m *splitter) orphans(ctx context.Context, rep *Report, target bool) error {
	legacy, err := m.lq.CountOrphans(ctx)
	if err != nil {
		return fmt.Errorf("count orphans: %w", err)
	}
	for _, o := range []struct {
		kind, target, carried string
		n                     int64
	}{
		{"carts of deleted users",
			`SELECT count(*) FROM carts c JOIN shopmigrate.users u ON u.subject = c.user_id WHERE u.reason = 'deleted user'`,
			"carts under the subject " + m.cfg.Users.UnmappedPrefix + "<legacy user id>, which no issuer hands out",
			legacy.CartsOfDeletedUsers},
		{"cart lines of deleted products",
			`SELECT count(*) FROM cart_items i JOIN product_versions v ON v.product_id = i.product_id WHERE v.deleted AND NOT i.available`,
			"lines kept with their last snapshot, unavailable, the product tombstoned in product_versions",
			legacy.LinesOfDeletedProducts},
		{"wishlist items of deleted products",
			`SELECT count(*) FROM wishlist_items i JOIN product_versions v ON v.product_id = i.product_id WHERE v.deleted AND NOT i.available`,
			"items kept with their last snapshot, unavailable",
			legacy.WishesOfDeletedProducts},
	} {
		n := o.n
		carried := o.carried
		if target {
			var got int64
			if err := m.cart.QueryRow(ctx, o.target).Scan(&got); err != nil {
				return fmt.Errorf("count %s (cart): %w", o.kind, err)
			}
			if got == n {
				carried += fmt.Sprintf(" (all %d found there)", got)
			} else {
				carried += fmt.Sprintf(" (ONLY %d found there)", got)
				rep.Verified = false
			}
		}
		rep.Orphans = append(rep.Orphans, Orphan{Kind: o.kind, Count: n, Carried: carried})
	}
	return nil
}
