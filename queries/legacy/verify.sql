-- The legacy side of a split's verification: per target table, the row
-- count and checksum of the legacy rows as the services store them
-- (resolved names and SKUs, minor units, upper-case codes), keyed by
-- legacy ids. The target side (shopmigrate/verify.go) renders its rows the
-- same way, mapping UUIDs and subjects back to legacy ids, so equal sums
-- mean equal rows. The checksum is the sum of the first 60 bits of the MD5
-- of each row's text form: it does not depend on row order.

-- ChecksumCategories: productsvc's categories.
-- name: ChecksumCategories :one
SELECT count(*) AS n, coalesce(sum(('x' || substr(md5(q::text), 1, 15))::bit(60)::bigint), 0)::text AS checksum
FROM (
    SELECT c.id,
           CASE WHEN EXISTS (SELECT 1 FROM categories d WHERE lower(d.name) = lower(c.name) AND d.id < c.id)
                THEN c.name || ' (legacy ' || c.id || ')' ELSE c.name END,
           c.description
    FROM categories c
) AS q;

-- ChecksumProducts: productsvc's products (the live legacy ones).
-- name: ChecksumProducts :one
SELECT count(*) AS n, coalesce(sum(('x' || substr(md5(q::text), 1, 15))::bit(60)::bigint), 0)::text AS checksum
FROM (
    SELECT p.id,
           CASE WHEN EXISTS (SELECT 1 FROM products q WHERE q.sku = p.sku AND q.id < p.id AND q.deleted_at IS NULL)
                THEN p.sku || '-L' || p.id ELSE p.sku END,
           p.name, p.description, p.category_id,
           CASE WHEN EXISTS (SELECT 1 FROM categories d WHERE lower(d.name) = lower(c.name) AND d.id < c.id)
                THEN c.name || ' (legacy ' || c.id || ')' ELSE c.name END,
           (p.price * 100)::bigint
    FROM products p JOIN categories c ON c.id = p.category_id
    WHERE p.deleted_at IS NULL
) AS q;

-- ChecksumProductVersions: the cart's product_versions (every product,
-- deleted ones as tombstones).
-- name: ChecksumProductVersions :one
SELECT count(*) AS n, coalesce(sum(('x' || substr(md5(q::text), 1, 15))::bit(60)::bigint), 0)::text AS checksum
FROM (SELECT p.id, p.deleted_at IS NOT NULL FROM products p) AS q;

-- ChecksumPromoCodes: the cart's promo_codes.
-- name: ChecksumPromoCodes :one
SELECT count(*) AS n, coalesce(sum(('x' || substr(md5(q::text), 1, 15))::bit(60)::bigint), 0)::text AS checksum
FROM (
    SELECT upper(code), percent_off, (amount_off * 100)::bigint, max_redemptions,
           extract(epoch FROM starts_at), extract(epoch FROM ends_at), active
    FROM promo_codes
) AS q;

-- ChecksumCarts: the cart's carts, by legacy user.
-- name: ChecksumCarts :one
SELECT count(*) AS n, coalesce(sum(('x' || substr(md5(q::text), 1, 15))::bit(60)::bigint), 0)::text AS checksum
FROM (SELECT user_id, extract(epoch FROM created_at), extract(epoch FROM updated_at) FROM carts) AS q;

-- ChecksumCartItems: the cart's lines, with the snapshots of their
-- products' current names and prices.
-- name: ChecksumCartItems :one
SELECT count(*) AS n, coalesce(sum(('x' || substr(md5(q::text), 1, 15))::bit(60)::bigint), 0)::text AS checksum
FROM (
    SELECT c.user_id, i.product_id, i.quantity, p.name, (p.price * 100)::bigint, (i.unit_price * 100)::bigint,
           p.deleted_at IS NULL
    FROM cart_items i JOIN carts c ON c.id = i.cart_id JOIN products p ON p.id = i.product_id
) AS q;

-- ChecksumWishlists: the cart's wishlists, by legacy user.
-- name: ChecksumWishlists :one
SELECT count(*) AS n, coalesce(sum(('x' || substr(md5(q::text), 1, 15))::bit(60)::bigint), 0)::text AS checksum
FROM (SELECT user_id, extract(epoch FROM created_at), extract(epoch FROM updated_at) FROM wishlists) AS q;

-- ChecksumWishlistItems: the cart's wishlist items, with snapshots.
-- name: ChecksumWishlistItems :one
SELECT count(*) AS n, coalesce(sum(('x' || substr(md5(q::text), 1, 15))::bit(60)::bigint), 0)::text AS checksum
FROM (
    SELECT w.user_id, i.product_id, p.name, (p.price * 100)::bigint, p.deleted_at IS NULL
    FROM wishlist_items i JOIN wishlists w ON w.id = i.wishlist_id JOIN products p ON p.id = i.product_id
) AS q;

-- ChecksumCartPromoCodes: the codes the cart's carts hold.
-- name: ChecksumCartPromoCodes :one
SELECT count(*) AS n, coalesce(sum(('x' || substr(md5(q::text), 1, 15))::bit(60)::bigint), 0)::text AS checksum
FROM (
    SELECT c.user_id, upper(pc.code), extract(epoch FROM h.applied_at)
    FROM cart_promo_codes h JOIN carts c ON c.id = h.cart_id JOIN promo_codes pc ON pc.id = h.promo_code_id
) AS q;

-- CountOrphans counts the legacy rows whose parent is soft-deleted: carts
-- of deleted users, and cart lines and wishlist items of deleted products.
-- name: CountOrphans :one
SELECT (SELECT count(*) FROM carts c JOIN users u ON u.id = c.user_id WHERE u.deleted_at IS NOT NULL) AS carts_of_deleted_users,
       (SELECT count(*) FROM cart_items i JOIN products p ON p.id = i.product_id WHERE p.deleted_at IS NOT NULL) AS lines_of_deleted_products,
       (SELECT count(*) FROM wishlist_items i JOIN products p ON p.id = i.product_id WHERE p.deleted_at IS NOT NULL) AS wishes_of_deleted_products;
