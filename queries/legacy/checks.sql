-- ListProblems finds what a plain copy of the legacy database would get
-- wrong, one row per problem row: its kind, the legacy table and id, what
-- is wrong, and the resolution a split applies ('' when the split refuses
-- to run: the row must be fixed in the legacy database). With
-- @round_fractions, amounts with fractions of a minor unit are rounded
-- half away from zero, else refused. Rows come in the order of the kinds
-- below, then by table and id.
--
-- Conflicts are kept apart, never merged: of categories whose names are
-- equal but for case, and of live products sharing a SKU, the lowest id
-- keeps its name or SKU, the others get " (legacy <id>)" or "-L<id>"
-- appended (ReadCategories and ReadProducts take the renamed ids from
-- here).
-- name: ListProblems :many
WITH named AS (
    SELECT c.id, c.name, c.description,
           EXISTS (SELECT 1 FROM categories d WHERE lower(d.name) = lower(c.name) AND d.id < c.id) AS renamed
    FROM categories c
), cats AS (
    SELECT n.id, n.name, n.description, n.renamed,
           CASE WHEN n.renamed THEN n.name || ' (legacy ' || n.id || ')' ELSE n.name END AS new_name
    FROM named n
), skus AS (
    SELECT p.id, p.sku,
           EXISTS (SELECT 1 FROM products q WHERE q.sku = p.sku AND q.id < p.id AND q.deleted_at IS NULL) AS renamed
    FROM products p WHERE p.deleted_at IS NULL
), prods AS (
    SELECT s.id, s.sku, s.renamed, CASE WHEN s.renamed THEN s.sku || '-L' || s.id ELSE s.sku END AS new_sku
    FROM skus s
), found (ord, kind, tbl, legacy_id, detail, resolution) AS (
    SELECT 1, 'duplicate-category-name', 'categories', c.id,
           'name ' || quote_literal(c.name) || ' equals the name of category ' ||
               (SELECT min(d.id) FROM categories d WHERE lower(d.name) = lower(c.name)) || ' but for case',
           'kept apart, renamed to ' || quote_literal(c.new_name)
    FROM cats c WHERE c.renamed
    UNION ALL
    SELECT 2, 'duplicate-sku', 'products', p.id,
           'SKU ' || quote_literal(p.sku) || ' is also the SKU of product ' ||
               (SELECT min(q.id) FROM products q WHERE q.sku = p.sku AND q.deleted_at IS NULL),
           'kept apart, SKU changed to ' || quote_literal(p.new_sku)
    FROM prods p WHERE p.renamed
    UNION ALL
    SELECT 3, 'conflict-unresolved', 'categories', c.id, 'the new name ' || quote_literal(c.new_name) || ' is taken too', ''
    FROM cats c WHERE c.renamed AND EXISTS (SELECT 1 FROM categories e WHERE lower(e.name) = lower(c.new_name))
    UNION ALL
    SELECT 4, 'conflict-unresolved', 'products', p.id, 'the new SKU ' || quote_literal(p.new_sku) || ' is taken too', ''
    FROM prods p WHERE p.renamed AND EXISTS (SELECT 1 FROM products e WHERE e.sku = p.new_sku AND e.deleted_at IS NULL)
    UNION ALL
    SELECT 5, 'precision', 'products', p.id, 'price ' || p.price || ' has a fraction of a minor unit',
           CASE WHEN @round_fractions::boolean THEN 'rounded half away from zero to ' || round(p.price * 100)::bigint || ' minor units'
                ELSE 'refused: fix the row, or rerun with --round-fractions to round it half away from zero to ' || round(p.price * 100)::bigint || ' minor units' END
    FROM products p WHERE p.price * 100 <> trunc(p.price * 100)
    UNION ALL
    SELECT 6, 'precision', 'cart_items', i.id, 'unit_price ' || i.unit_price || ' has a fraction of a minor unit',
           CASE WHEN @round_fractions::boolean THEN 'rounded half away from zero to ' || round(i.unit_price * 100)::bigint || ' minor units'
                ELSE 'refused: fix the row, or rerun with --round-fractions to round it half away from zero to ' || round(i.unit_price * 100)::bigint || ' minor units' END
    FROM cart_items i WHERE i.unit_price * 100 <> trunc(i.unit_price * 100)
    UNION ALL
    SELECT 7, 'precision', 'promo_codes', pc.id, 'amount_off ' || pc.amount_off || ' has a fraction of a minor unit',
           CASE WHEN @round_fractions::boolean THEN 'rounded half away from zero to ' || round(pc.amount_off * 100)::bigint || ' minor units'
                ELSE 'refused: fix the row, or rerun with --round-fractions to round it half away from zero to ' || round(pc.amount_off * 100)::bigint || ' minor units' END
    FROM promo_codes pc WHERE pc.amount_off IS NOT NULL AND pc.amount_off * 100 <> trunc(pc.amount_off * 100)
    UNION ALL
    SELECT 8, 'out-of-range', 'products', p.id, 'price ' || p.price || ' is not between 0 and 1e9', ''
    FROM products p WHERE p.deleted_at IS NULL AND (p.price < 0 OR round(p.price * 100) > 100000000000)
    UNION ALL
    SELECT 9, 'out-of-range', 'cart_items', i.id,
           'quantity ' || i.quantity || ' or unit price ' || i.unit_price || ' out of range (1..999, 0..1e9)', ''
    FROM cart_items i WHERE i.quantity NOT BETWEEN 1 AND 999 OR i.unit_price < 0 OR round(i.unit_price * 100) > 100000000000
    UNION ALL
    SELECT 10, 'out-of-range', 'promo_codes', pc.id,
           'amount_off ' || coalesce(pc.amount_off::text, 'NULL') || ' or max_redemptions ' || pc.max_redemptions || ' out of range', ''
    FROM promo_codes pc WHERE round(pc.amount_off * 100) > 100000000000 OR pc.max_redemptions < 0
    UNION ALL
    SELECT 11, 'invalid', 'categories', c.id, 'name must have 1 to 100 characters, description at most 2000', ''
    FROM cats c WHERE char_length(c.new_name) NOT BETWEEN 1 AND 100 OR char_length(c.description) > 2000
    UNION ALL
    SELECT 12, 'invalid', 'products', p.id, 'name must have 1 to 200 characters, description at most 5000, SKU at least 1', ''
    FROM products p
    WHERE p.deleted_at IS NULL AND (char_length(p.name) NOT BETWEEN 1 AND 200 OR char_length(p.description) > 5000 OR p.sku = '')
    UNION ALL
    SELECT 13, 'invalid', 'promo_codes', pc.id,
           'code ' || quote_literal(pc.code) || ' in upper case is not 3 to 32 of A-Z 0-9 _ -, is taken twice, or ends before it starts', ''
    FROM promo_codes pc
    WHERE upper(pc.code) !~ '^[A-Z0-9_-]{3,32}$' OR pc.ends_at <= pc.starts_at
       OR EXISTS (SELECT 1 FROM promo_codes q WHERE upper(q.code) = upper(pc.code) AND q.id <> pc.id)
    UNION ALL
    SELECT 14, 'expired-promo-code', 'promo_codes', pc.id, 'code ' || pc.code || ' ended ' || pc.ends_at,
           'carried as is: it applies to no cart'
    FROM promo_codes pc WHERE pc.ends_at <= now()
    UNION ALL
    SELECT 15, 'over-redeemed-promo-code', 'promo_codes', pc.id,
           'code ' || pc.code || ' allows ' || pc.max_redemptions || ' redemptions; counted ' || pc.times_redeemed ||
               ', held by ' || (SELECT count(*) FROM cart_promo_codes h WHERE h.promo_code_id = pc.id) || ' carts',
           'carried with all its holds; cartsvc refuses new holds until fewer than ' || pc.max_redemptions || ' carts hold it'
    FROM promo_codes pc WHERE pc.max_redemptions > 0 AND (pc.times_redeemed > pc.max_redemptions
        OR (SELECT count(*) FROM cart_promo_codes h WHERE h.promo_code_id = pc.id) > pc.max_redemptions)
    UNION ALL
    SELECT 16, 'several-promo-codes', 'cart_promo_codes', h.cart_id, 'cart holds ' || count(*) || ' codes',
           'carried with all; cartsvc lets a cart add no more'
    FROM cart_promo_codes h GROUP BY h.cart_id HAVING count(*) > 1
)
SELECT f.kind::text AS kind, f.tbl::text AS tbl, f.legacy_id::bigint AS legacy_id,
       f.detail::text AS detail, f.resolution::text AS resolution
FROM found f
ORDER BY f.ord, f.legacy_id;
