-- ListCartLines returns the user's cart lines, oldest first, each with the
-- highest product version this service has heard of (0 if none) and
-- whether that version deleted the product.
-- name: ListCartLines :many
SELECT ci.product_id, ci.quantity, ci.name, ci.unit_price_minor, ci.added_unit_price_minor,
       ci.currency_code, ci.product_version, ci.available, ci.add_time, ci.update_time,
       COALESCE(pv.version, 0)::bigint      AS known_version,
       COALESCE(pv.deleted, false)::boolean AS known_deleted
FROM cart_items ci
LEFT JOIN product_versions pv ON pv.product_id = ci.product_id
WHERE ci.user_id = @user_id
ORDER BY ci.add_time, ci.product_id;

-- GetCartLineQuantity returns the quantity of one line (no rows if the cart
-- has no line for the product).
-- name: GetCartLineQuantity :one
SELECT quantity FROM cart_items
WHERE user_id = @user_id AND product_id = @product_id;

-- CountCartLines returns how many lines the user's cart has.
-- name: CountCartLines :one
SELECT count(*) FROM cart_items
WHERE user_id = @user_id;

-- PutCartLine writes a line with a fresh product snapshot: a new line, or
-- an existing one with its quantity, snapshot and added price replaced (its
-- add_time is kept). The caller holds the cart lock.
-- name: PutCartLine :exec
INSERT INTO cart_items (user_id, product_id, quantity, name, unit_price_minor,
                        added_unit_price_minor, currency_code, product_version,
                        available, add_time, update_time)
VALUES (@user_id, @product_id, @quantity, @name, @unit_price_minor,
        @unit_price_minor, @currency_code, @product_version, true, @now, @now)
ON CONFLICT (user_id, product_id) DO UPDATE
SET quantity = EXCLUDED.quantity, name = EXCLUDED.name,
    unit_price_minor = EXCLUDED.unit_price_minor,
    added_unit_price_minor = EXCLUDED.added_unit_price_minor,
    currency_code = EXCLUDED.currency_code, product_version = EXCLUDED.product_version,
    available = true, update_time = EXCLUDED.update_time;

-- SetCartLineQuantity sets the quantity of an existing line; it reports 0
-- rows when the cart has no line for the product.
-- name: SetCartLineQuantity :execrows
UPDATE cart_items SET quantity = @quantity, update_time = @now
WHERE user_id = @user_id AND product_id = @product_id;

-- DeleteCartLine removes one line (0 rows if there was none).
-- name: DeleteCartLine :execrows
DELETE FROM cart_items
WHERE user_id = @user_id AND product_id = @product_id;

-- DeleteCartLines removes every line of the user's cart.
-- name: DeleteCartLines :exec
DELETE FROM cart_items
WHERE user_id = @user_id;
