-- The split's reads of the legacy database, one table of the target at a
-- time, batch by batch in primary-key order: each read takes the batch
-- after keyset position @after (a legacy id), up to @max_rows rows (or
-- parent carts and wishlists), changed at or after @since (NULL in a
-- first pass: every row). Each count counts what a pass of that table
-- reads, for the progress bar. Money comes as minor units, rounded half
-- away from zero (numeric to bigint) (the checks listed every amount that needed it).

-- CountCategories counts the categories a pass reads.
-- name: CountCategories :one
SELECT count(*) FROM categories
WHERE sqlc.narg('since')::timestamptz IS NULL OR updated_at >= sqlc.narg('since')::timestamptz;

-- ReadCategories reads a batch of categories, each with the name it gets
-- in productsvc: the name, or for those the checks found equal but for
-- case to one with a lower id (@renamed), the name with " (legacy <id>)"
-- appended.
-- name: ReadCategories :many
SELECT c.id,
       CASE WHEN c.id = ANY(@renamed::bigint[]) THEN c.name || ' (legacy ' || c.id || ')' ELSE c.name END::text AS name,
       c.description, c.created_at, c.updated_at
FROM categories c
WHERE c.id > @after AND (sqlc.narg('since')::timestamptz IS NULL OR c.updated_at >= sqlc.narg('since')::timestamptz)
ORDER BY c.id
LIMIT @max_rows;

-- CountProducts counts the products a pass of productsvc's products reads:
-- the live ones in a first pass, else those changed (or whose category
-- changed) since, deleted or not.
-- name: CountProducts :one
SELECT count(*) FROM products p JOIN categories c ON c.id = p.category_id
WHERE (sqlc.narg('since')::timestamptz IS NULL AND p.deleted_at IS NULL)
   OR p.updated_at >= sqlc.narg('since')::timestamptz OR c.updated_at >= sqlc.narg('since')::timestamptz;

-- ReadProducts reads a batch of products (see CountProducts), each with
-- the SKU and category name it gets in productsvc (@renamed_products and
-- @renamed_categories: the rows the checks found a duplicate of). The batch
-- is chosen from products alone, so that the primary key's order and the
-- LIMIT bound the work.
-- name: ReadProducts :many
SELECT p.id,
       CASE WHEN p.id = ANY(@renamed_products::bigint[]) THEN p.sku || '-L' || p.id ELSE p.sku END::text AS sku,
       p.name, p.description, p.category_id,
       CASE WHEN c.id = ANY(@renamed_categories::bigint[]) THEN c.name || ' (legacy ' || c.id || ')' ELSE c.name END::text AS category_name,
       (p.price * 100)::bigint AS price_minor, p.created_at, p.updated_at, (p.deleted_at IS NOT NULL)::boolean AS deleted
FROM (
    SELECT * FROM products q
    WHERE q.id > @after
      AND ((sqlc.narg('since')::timestamptz IS NULL AND q.deleted_at IS NULL)
           OR q.updated_at >= sqlc.narg('since')::timestamptz
           OR q.category_id IN (SELECT k.id FROM categories k WHERE k.updated_at >= sqlc.narg('since')::timestamptz))
    ORDER BY q.id
    LIMIT @max_rows
) p
JOIN categories c ON c.id = p.category_id
ORDER BY p.id;

-- CountProductVersions counts the products a pass of the cart's
-- product_versions reads: every one (deleted ones are tombstones) in a
-- first pass, else those changed (or whose category changed) since.
-- name: CountProductVersions :one
SELECT count(*) FROM products p JOIN categories c ON c.id = p.category_id
WHERE sqlc.narg('since')::timestamptz IS NULL
   OR p.updated_at >= sqlc.narg('since')::timestamptz OR c.updated_at >= sqlc.narg('since')::timestamptz;

-- ReadProductVersions reads a batch of products for the cart's
-- product_versions (see CountProductVersions), with the name and price its
-- lines' snapshots take.
-- name: ReadProductVersions :many
SELECT q.id, (q.deleted_at IS NOT NULL)::boolean AS deleted, q.name, (q.price * 100)::bigint AS price_minor, q.updated_at
FROM products q
WHERE q.id > @after
  AND (sqlc.narg('since')::timestamptz IS NULL
       OR q.updated_at >= sqlc.narg('since')::timestamptz
       OR q.category_id IN (SELECT k.id FROM categories k WHERE k.updated_at >= sqlc.narg('since')::timestamptz))
ORDER BY q.id
LIMIT @max_rows;

-- CountPromoCodes counts the promo codes a pass reads.
-- name: CountPromoCodes :one
SELECT count(*) FROM promo_codes
WHERE sqlc.narg('since')::timestamptz IS NULL OR updated_at >= sqlc.narg('since')::timestamptz;

-- ReadPromoCodes reads a batch of promo codes, their codes in upper case.
-- name: ReadPromoCodes :many
SELECT id, upper(code)::text AS code, percent_off, (amount_off IS NOT NULL)::boolean AS has_amount_off,
       coalesce((amount_off * 100)::bigint, 0)::bigint AS amount_off_minor,
       max_redemptions, starts_at, ends_at, active, created_at
FROM promo_codes
WHERE id > @after AND (sqlc.narg('since')::timestamptz IS NULL OR updated_at >= sqlc.narg('since')::timestamptz)
ORDER BY id
LIMIT @max_rows;

-- CountCarts counts the carts a pass reads.
-- name: CountCarts :one
SELECT count(*) FROM carts
WHERE sqlc.narg('since')::timestamptz IS NULL OR updated_at >= sqlc.narg('since')::timestamptz;

-- ReadCarts reads a batch of carts.
-- name: ReadCarts :many
SELECT id, user_id, created_at, updated_at FROM carts
WHERE id > @after AND (sqlc.narg('since')::timestamptz IS NULL OR updated_at >= sqlc.narg('since')::timestamptz)
ORDER BY id
LIMIT @max_rows;

-- CountWishlists counts the wishlists a pass reads.
-- name: CountWishlists :one
SELECT count(*) FROM wishlists
WHERE sqlc.narg('since')::timestamptz IS NULL OR updated_at >= sqlc.narg('since')::timestamptz;

-- ReadWishlists reads a batch of wishlists.
-- name: ReadWishlists :many
SELECT id, user_id, created_at, updated_at FROM wishlists
WHERE id > @after AND (sqlc.narg('since')::timestamptz IS NULL OR updated_at >= sqlc.narg('since')::timestamptz)
ORDER BY id
LIMIT @max_rows;

-- CountCartItems counts the lines of the carts a pass reads.
-- name: CountCartItems :one
SELECT count(*) FROM cart_items i JOIN carts c ON c.id = i.cart_id
WHERE sqlc.narg('since')::timestamptz IS NULL OR c.updated_at >= sqlc.narg('since')::timestamptz;

-- ReadCartItems reads a batch of @max_rows carts with their lines, one row
-- per cart and its lines column by column (line_*, empty arrays for a cart
-- without lines), each line with its product's current name and price and
-- whether the product is live.
-- name: ReadCartItems :many
SELECT c.id AS cart_id, c.user_id,
       coalesce(array_agg(i.product_id ORDER BY i.id) FILTER (WHERE i.id IS NOT NULL), '{}')::bigint[] AS line_product_ids,
       coalesce(array_agg(i.quantity ORDER BY i.id) FILTER (WHERE i.id IS NOT NULL), '{}')::integer[] AS line_quantities,
       coalesce(array_agg(p.name ORDER BY i.id) FILTER (WHERE i.id IS NOT NULL), '{}')::text[] AS line_names,
       coalesce(array_agg((p.price * 100)::bigint ORDER BY i.id) FILTER (WHERE i.id IS NOT NULL), '{}')::bigint[] AS line_prices,
       coalesce(array_agg((i.unit_price * 100)::bigint ORDER BY i.id) FILTER (WHERE i.id IS NOT NULL), '{}')::bigint[] AS line_added_prices,
       coalesce(array_agg(p.deleted_at IS NULL ORDER BY i.id) FILTER (WHERE i.id IS NOT NULL), '{}')::boolean[] AS line_available,
       coalesce(array_agg(i.created_at ORDER BY i.id) FILTER (WHERE i.id IS NOT NULL), '{}')::timestamptz[] AS line_created,
       coalesce(array_agg(i.updated_at ORDER BY i.id) FILTER (WHERE i.id IS NOT NULL), '{}')::timestamptz[] AS line_updated
FROM (
    SELECT k.id, k.user_id FROM carts k
    WHERE k.id > @after AND (sqlc.narg('since')::timestamptz IS NULL OR k.updated_at >= sqlc.narg('since')::timestamptz)
    ORDER BY k.id
    LIMIT @max_rows
) c
LEFT JOIN cart_items i ON i.cart_id = c.id
LEFT JOIN products p ON p.id = i.product_id
GROUP BY c.id, c.user_id
ORDER BY c.id;

-- CountWishlistItems counts the items of the wishlists a pass reads.
-- name: CountWishlistItems :one
SELECT count(*) FROM wishlist_items i JOIN wishlists w ON w.id = i.wishlist_id
WHERE sqlc.narg('since')::timestamptz IS NULL OR w.updated_at >= sqlc.narg('since')::timestamptz;

-- ReadWishlistItems reads a batch of @max_rows wishlists with their items,
-- as ReadCartItems does carts.
-- name: ReadWishlistItems :many
SELECT w.id AS wishlist_id, w.user_id,
       coalesce(array_agg(i.product_id ORDER BY i.id) FILTER (WHERE i.id IS NOT NULL), '{}')::bigint[] AS item_product_ids,
       coalesce(array_agg(p.name ORDER BY i.id) FILTER (WHERE i.id IS NOT NULL), '{}')::text[] AS item_names,
       coalesce(array_agg((p.price * 100)::bigint ORDER BY i.id) FILTER (WHERE i.id IS NOT NULL), '{}')::bigint[] AS item_prices,
       coalesce(array_agg(p.deleted_at IS NULL ORDER BY i.id) FILTER (WHERE i.id IS NOT NULL), '{}')::boolean[] AS item_available,
       coalesce(array_agg(i.created_at ORDER BY i.id) FILTER (WHERE i.id IS NOT NULL), '{}')::timestamptz[] AS item_created
FROM (
    SELECT k.id, k.user_id FROM wishlists k
    WHERE k.id > @after AND (sqlc.narg('since')::timestamptz IS NULL OR k.updated_at >= sqlc.narg('since')::timestamptz)
    ORDER BY k.id
    LIMIT @max_rows
) w
LEFT JOIN wishlist_items i ON i.wishlist_id = w.id
LEFT JOIN products p ON p.id = i.product_id
GROUP BY w.id, w.user_id
ORDER BY w.id;

-- CountCartPromoCodes counts the codes held by the carts a pass reads.
-- name: CountCartPromoCodes :one
SELECT count(*) FROM cart_promo_codes h JOIN carts c ON c.id = h.cart_id
WHERE sqlc.narg('since')::timestamptz IS NULL OR c.updated_at >= sqlc.narg('since')::timestamptz;

-- ReadCartPromoCodes reads a batch of @max_rows carts with the codes they
-- hold (in upper case), as ReadCartItems does lines.
-- name: ReadCartPromoCodes :many
SELECT c.id AS cart_id, c.user_id,
       coalesce(array_agg(upper(pc.code) ORDER BY pc.id) FILTER (WHERE pc.id IS NOT NULL), '{}')::text[] AS codes,
       coalesce(array_agg(h.applied_at ORDER BY pc.id) FILTER (WHERE pc.id IS NOT NULL), '{}')::timestamptz[] AS applied
FROM (
    SELECT k.id, k.user_id FROM carts k
    WHERE k.id > @after AND (sqlc.narg('since')::timestamptz IS NULL OR k.updated_at >= sqlc.narg('since')::timestamptz)
    ORDER BY k.id
    LIMIT @max_rows
) c
LEFT JOIN cart_promo_codes h ON h.cart_id = c.id
LEFT JOIN promo_codes pc ON pc.id = h.promo_code_id
GROUP BY c.id, c.user_id
ORDER BY c.id;

-- ListUsers lists every legacy user, by id, for the subject mapping.
-- name: ListUsers :many
SELECT id, email, (deleted_at IS NOT NULL)::boolean AS deleted FROM users ORDER BY id;
