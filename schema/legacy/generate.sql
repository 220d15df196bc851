-- Fills an empty legacy database (001_schema.sql) with a deterministic test
-- dataset, server-side with generate_series. Its size comes from settings
-- the caller sets first (shopmigrate generate does):
--   legacy.users, legacy.categories, legacy.products, legacy.carts (at
--   most users), legacy.items (cart lines), legacy.wishlist_items,
--   legacy.promo_codes (at least 4).
-- The dirt, by rule (i is the row's number):
--   users        every 97th deleted; every 50th has the email of the one
--                before it in other case (two users, one OIDC subject)
--   categories   every 10th is the one before it in lower case
--   products     the 500th of every 1000 has the SKU of the one before it; every
--                200th deleted
--   cart lines   every 37th priced with half a cent more, every 41st at
--                90% (fractions of a cent); lines of deleted products and
--                carts of deleted users follow from the rules above
--   promo codes  every 3rd expired; every 4th allows 2 redemptions and is
--                held by more carts (and was counted redeemed 5 times)

ALTER TABLE cart_items DISABLE TRIGGER cart_items_touch_cart;
ALTER TABLE cart_promo_codes DISABLE TRIGGER cart_promo_codes_touch_cart;
ALTER TABLE wishlist_items DISABLE TRIGGER wishlist_items_touch_wishlist;

INSERT INTO users (id, email, name, created_at, updated_at, deleted_at)
SELECT i,
       CASE WHEN i % 50 = 0 THEN 'User' || (i - 1) || '@Example.COM' ELSE 'user' || i || '@example.com' END,
       'User ' || i,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute',
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute',
       CASE WHEN i % 97 = 0 THEN timestamptz '2024-06-01 00:00:00+00' END
FROM generate_series(1, current_setting('legacy.users')::bigint) AS i;

INSERT INTO categories (id, name, description, created_at, updated_at)
SELECT i,
       CASE WHEN i % 10 = 0 THEN 'category ' || (i - 1) ELSE 'Category ' || i END,
       'Things of kind ' || i,
       timestamptz '2023-01-01 00:00:00+00' + i * interval '1 hour',
       timestamptz '2023-01-01 00:00:00+00' + i * interval '1 hour'
FROM generate_series(1, current_setting('legacy.categories')::bigint) AS i;

INSERT INTO products (id, sku, name, description, category_id, price, created_at, updated_at, deleted_at)
SELECT i,
       'SKU-' || lpad((CASE WHEN i % 1000 = 500 THEN i - 1 ELSE i END)::text, 7, '0'),
       'Product ' || i,
       'The product numbered ' || i,
       1 + i % current_setting('legacy.categories')::bigint,
       ((i * 7919) % 100000 + 100) / 100.0,
       timestamptz '2023-06-01 00:00:00+00' + i * interval '1 second',
       timestamptz '2023-06-01 00:00:00+00' + i * interval '1 second',
       CASE WHEN i % 200 = 0 THEN timestamptz '2024-06-01 00:00:00+00' END
FROM generate_series(1, current_setting('legacy.products')::bigint) AS i;

INSERT INTO carts (id, user_id, created_at, updated_at)
SELECT i, i,
       timestamptz '2024-02-01 00:00:00+00' + i * interval '1 second',
       timestamptz '2024-03-01 00:00:00+00' + i * interval '1 second'
FROM generate_series(1, current_setting('legacy.carts')::bigint) AS i;

-- Line j is in cart 1 + j % carts, slot j / carts; distinct slots of a
-- cart get distinct products (7919 is prime).
INSERT INTO cart_items (id, cart_id, product_id, quantity, unit_price, created_at, updated_at)
SELECT j, c, p, 1 + j % 5,
       CASE WHEN j % 37 = 0 THEN pr.price + 0.005
            WHEN j % 41 = 0 THEN round(pr.price * 0.9, 4)
            ELSE pr.price END,
       timestamptz '2024-02-01 00:00:00+00' + j * interval '1 second',
       timestamptz '2024-02-01 00:00:00+00' + j * interval '1 second'
FROM (
    SELECT j, 1 + (j - 1) % k AS c,
           1 + ((1 + (j - 1) % k) * 131 + ((j - 1) / k) * 7919) % current_setting('legacy.products')::bigint AS p
    FROM generate_series(1, current_setting('legacy.items')::bigint) AS j,
         (SELECT current_setting('legacy.carts')::bigint AS k) AS kk
) AS l
JOIN products pr ON pr.id = l.p;

INSERT INTO wishlists (id, user_id, created_at, updated_at)
SELECT i, i,
       timestamptz '2024-02-01 00:00:00+00' + i * interval '1 second',
       timestamptz '2024-03-01 00:00:00+00' + i * interval '1 second'
FROM generate_series(1, greatest(1, current_setting('legacy.carts')::bigint / 2)) AS i;

INSERT INTO wishlist_items (id, wishlist_id, product_id, created_at, updated_at)
SELECT j, w, 1 + (w * 577 + ((j - 1) / k) * 7919) % current_setting('legacy.products')::bigint,
       timestamptz '2024-02-01 00:00:00+00' + j * interval '1 second',
       timestamptz '2024-02-01 00:00:00+00' + j * interval '1 second'
FROM (
    SELECT j, k, 1 + (j - 1) % k AS w
    FROM generate_series(1, current_setting('legacy.wishlist_items')::bigint) AS j,
         (SELECT greatest(1, current_setting('legacy.carts')::bigint / 2) AS k) AS kk
) AS l;

INSERT INTO promo_codes (id, code, percent_off, amount_off, max_redemptions, times_redeemed,
                         starts_at, ends_at, active, created_at, updated_at)
SELECT i, 'CODE' || lpad(i::text, 3, '0'),
       CASE WHEN i % 2 = 0 THEN 5 + i % 30 END,
       CASE WHEN i % 2 = 1 THEN (i * 1.25)::numeric(12,2) END,
       CASE WHEN i % 4 = 0 THEN 2 ELSE 0 END,
       CASE WHEN i % 4 = 0 THEN 5 ELSE i END,
       timestamptz '2024-01-01 00:00:00+00',
       CASE WHEN i % 3 = 0 THEN timestamptz '2024-03-01 00:00:00+00' ELSE timestamptz '2099-01-01 00:00:00+00' END,
       i % 7 <> 0,
       timestamptz '2024-01-01 00:00:00+00',
       timestamptz '2024-01-01 00:00:00+00'
FROM generate_series(1, current_setting('legacy.promo_codes')::bigint) AS i;

-- Every 10th cart holds a code; codes are spread so that the every-4th
-- codes (2 redemptions allowed) are held by more carts than that.
INSERT INTO cart_promo_codes (cart_id, promo_code_id, applied_at)
SELECT c, 1 + (c / 10) % current_setting('legacy.promo_codes')::bigint,
       timestamptz '2024-02-15 00:00:00+00' + c * interval '1 second'
FROM generate_series(10, current_setting('legacy.carts')::bigint, 10) AS c;

ALTER TABLE cart_items ENABLE TRIGGER cart_items_touch_cart;
ALTER TABLE cart_promo_codes ENABLE TRIGGER cart_promo_codes_touch_cart;
ALTER TABLE wishlist_items ENABLE TRIGGER wishlist_items_touch_wishlist;

SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM users), false);
SELECT setval(pg_get_serial_sequence('categories', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM categories), false);
SELECT setval(pg_get_serial_sequence('products', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM products), false);
SELECT setval(pg_get_serial_sequence('carts', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM carts), false);
SELECT setval(pg_get_serial_sequence('cart_items', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM cart_items), false);
SELECT setval(pg_get_serial_sequence('wishlists', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM wishlists), false);
SELECT setval(pg_get_serial_sequence('wishlist_items', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM wishlist_items), false);
SELECT setval(pg_get_serial_sequence('promo_codes', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM promo_codes), false);

ANALYZE;
