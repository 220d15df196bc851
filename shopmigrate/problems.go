package shopmigrate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// check finds one kind of problem in the legacy database: each row of sql
// is (legacy id, detail, resolution).
type check struct {
	kind, table string
	blocking    bool
	sql         string
}

// maxMinor is the largest amount the services accept, in minor units.
const maxMinor = "100000000000"

// refusedFix is the resolution of a blocking problem in the data.
const refusedFix = "refused: fix the row in the legacy database"

// checks are the legacy problems a split looks for; with roundFractions,
// amounts with fractions of a minor unit are rounded instead of refused.
func checks(roundFractions bool) []check {
	fraction := func(table, col, where string) check {
		res := `'refused: fix the row, or rerun with --round-fractions to round it half away from zero to ' || round(` + col + ` * 100)::bigint || ' minor units'`
		if roundFractions {
			res = `'rounded half away from zero to ' || round(` + col + ` * 100)::bigint || ' minor units'`
		}
		return check{"precision", table, !roundFractions,
			`SELECT id, '` + col + ` ' || ` + col + ` || ' has a fraction of a minor unit', ` + res + ` FROM ` + table +
				` WHERE ` + col + ` * 100 <> trunc(` + col + ` * 100)` + where}
	}
	return []check{
		{"duplicate-category-name", "categories", false, `
SELECT c.id, 'name ' || quote_literal(c.name) || ' equals the name of category ' ||
    (SELECT min(d.id) FROM categories d WHERE lower(d.name) = lower(c.name)) || ' but for case',
    'kept apart, renamed to ' || quote_literal(` + categoryNameSQL + `)
FROM categories c WHERE EXISTS (SELECT 1 FROM categories d WHERE lower(d.name) = lower(c.name) AND d.id < c.id)`},
		{"duplicate-sku", "products", false, `
SELECT p.id, 'SKU ' || quote_literal(p.sku) || ' is also the SKU of product ' ||
    (SELECT min(q.id) FROM products q WHERE q.sku = p.sku AND q.deleted_at IS NULL),
    'kept apart, SKU changed to ' || quote_literal(` + skuSQL + `)
FROM products p WHERE p.deleted_at IS NULL
    AND EXISTS (SELECT 1 FROM products q WHERE q.sku = p.sku AND q.id < p.id AND q.deleted_at IS NULL)`},
		{"conflict-unresolved", "categories", true, `
SELECT c.id, 'the new name ' || quote_literal(` + categoryNameSQL + `) || ' is taken too', ''
FROM categories c
WHERE EXISTS (SELECT 1 FROM categories d WHERE lower(d.name) = lower(c.name) AND d.id < c.id)
    AND EXISTS (SELECT 1 FROM categories e WHERE lower(e.name) = lower(` + categoryNameSQL + `))`},
		{"conflict-unresolved", "products", true, `
SELECT p.id, 'the new SKU ' || quote_literal(` + skuSQL + `) || ' is taken too', ''
FROM products p
WHERE p.deleted_at IS NULL AND EXISTS (SELECT 1 FROM products q WHERE q.sku = p.sku AND q.id < p.id AND q.deleted_at IS NULL)
    AND EXISTS (SELECT 1 FROM products e WHERE e.sku = ` + skuSQL + ` AND e.deleted_at IS NULL)`},
		fraction("products", "price", ""),
		fraction("cart_items", "unit_price", ""),
		fraction("promo_codes", "amount_off", " AND amount_off IS NOT NULL"),
		{"out-of-range", "products", true, `
SELECT id, 'price ' || price || ' is not between 0 and 1e9', '' FROM products
WHERE deleted_at IS NULL AND (price < 0 OR round(price * 100) > ` + maxMinor + `)`},
		{"out-of-range", "cart_items", true, `
SELECT id, 'quantity ' || quantity || ' or unit price ' || unit_price || ' out of range (1..999, 0..1e9)', '' FROM cart_items
WHERE quantity NOT BETWEEN 1 AND 999 OR unit_price < 0 OR round(unit_price * 100) > ` + maxMinor},
		{"out-of-range", "promo_codes", true, `
SELECT id, 'amount_off ' || amount_off || ' or max_redemptions ' || max_redemptions || ' out of range', '' FROM promo_codes
WHERE round(amount_off * 100) > ` + maxMinor + ` OR max_redemptions < 0`},
		{"invalid", "categories", true, `
SELECT c.id, 'name must have 1 to 100 characters, description at most 2000', '' FROM categories c
WHERE char_length(` + categoryNameSQL + `) NOT BETWEEN 1 AND 100 OR char_length(c.description) > 2000`},
		{"invalid", "products", true, `
SELECT id, 'name must have 1 to 200 characters, description at most 5000, SKU at least 1', '' FROM products
WHERE deleted_at IS NULL AND (char_length(name) NOT BETWEEN 1 AND 200 OR char_length(description) > 5000 OR sku = '')`},
		{"invalid", "promo_codes", true, `
SELECT id, 'code ' || quote_literal(code) || ' in upper case is not 3 to 32 of A-Z 0-9 _ -, is taken twice, or ends before it starts', ''
FROM promo_codes p
WHERE upper(code) !~ '^[A-Z0-9_-]{3,32}$' OR ends_at <= starts_at
    OR EXISTS (SELECT 1 FROM promo_codes q WHERE upper(q.code) = upper(p.code) AND q.id <> p.id)`},
		{"expired-promo-code", "promo_codes", false, `
SELECT id, 'code ' || code || ' ended ' || ends_at, 'carried as is: it applies to no cart' FROM promo_codes WHERE ends_at <= now()`},
		{"over-redeemed-promo-code", "promo_codes", false, `
SELECT p.id, 'code ' || p.code || ' allows ' || p.max_redemptions || ' redemptions; counted ' || p.times_redeemed ||
    ', held by ' || (SELECT count(*) FROM cart_promo_codes h WHERE h.promo_code_id = p.id) || ' carts',
    'carried with all its holds; cartsvc refuses new holds until fewer than ' || p.max_redemptions || ' carts hold it'
FROM promo_codes p WHERE p.max_redemptions > 0 AND (p.times_redeemed > p.max_redemptions
    OR (SELECT count(*) FROM cart_promo_codes h WHERE h.promo_code_id = p.id) > p.max_redemptions)`},
		{"several-promo-codes", "cart_promo_codes", false, `
SELECT cart_id, 'cart holds ' || count(*) || ' codes', 'carried with all; cartsvc lets a cart add no more' FROM cart_promo_codes
GROUP BY cart_id HAVING count(*) > 1`},
	}
}

// problems runs the checks on the legacy database and, before a first
// pass, makes sure the targets hold no rows of their own.
func (m *splitter) problems(ctx context.Context, first bool) ([]Problem, error) {
	var out []Problem
	for _, c := range checks(m.cfg.RoundFractions) {
		sql := c.sql
		rows, err := m.legacy.Query(ctx, sql)
		if err != nil {
			return nil, fmt.Errorf("check %s of %s: %w", c.kind, c.table, err)
		}
		p := Problem{Kind: c.kind, Table: c.table, Blocking: c.blocking}
		_, err = pgx.ForEachRow(rows, []any{&p.LegacyID, &p.Detail, &p.Resolution}, func() error {
			if p.Resolution == "" {
				p.Resolution = refusedFix
			}
			out = append(out, p)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("check %s of %s: %w", c.kind, c.table, err)
		}
	}
	if !first {
		return out, nil
	}
	for _, st := range steps() {
		var n int64
		if err := m.db(st.db).QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{st.table}.Sanitize()).Scan(&n); err != nil {
			return nil, fmt.Errorf("%s database: %w", st.db, err)
		}
		if n > 0 {
			out = append(out, Problem{Kind: "target-not-empty", Table: st.table, Blocking: true,
				Detail:     fmt.Sprintf("the %s database's %s holds %d rows before the first pass", st.db, st.table, n),
				Resolution: "refused: split into freshly migrated, empty service databases"})
		}
	}
	return out, nil
}
