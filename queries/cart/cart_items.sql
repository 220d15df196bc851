-- AddCartLine adds quantity of a product with a fresh snapshot to the
-- user's cart: to its line (its quantity grows and its added price is
-- replaced, its add_time kept; its snapshot is replaced only by a newer
-- version: an event applied while the write was in flight may have brought
-- the line past the snapshot the write read), or as a new line when the cart
-- has fewer than max_lines lines, and only if the line then holds at most
-- max_quantity. It returns the quantity the line had (0 for none), how many
-- lines the cart had, whether it wrote and, if it did, the line as written
-- (line_*). The caller holds the cart lock.
-- name: AddCartLine :one
WITH have AS (
    SELECT ci.quantity FROM cart_items ci WHERE ci.user_id = @user_id AND ci.product_id = @product_id
), lines AS (
    SELECT count(*) AS n FROM cart_items ci WHERE ci.user_id = @user_id
), put AS (
    INSERT INTO cart_items AS ci (user_id, product_id, quantity, name, unit_price_minor,
                            added_unit_price_minor, currency_code, product_version,
                            available, add_time, update_time)
    SELECT @user_id, @product_id, COALESCE((SELECT h.quantity FROM have h), 0) + @quantity::integer, @name,
           @unit_price_minor, @unit_price_minor, @currency_code, @product_version, true, @now, @now
    WHERE COALESCE((SELECT h.quantity FROM have h), 0) + @quantity::integer <= @max_quantity::integer
      AND (EXISTS (SELECT 1 FROM have) OR (SELECT l.n FROM lines l) < @max_lines::bigint)
    ON CONFLICT (user_id, product_id) DO UPDATE
    SET quantity = EXCLUDED.quantity, added_unit_price_minor = EXCLUDED.added_unit_price_minor,
        update_time = EXCLUDED.update_time,
        name = CASE WHEN EXCLUDED.product_version > ci.product_version THEN EXCLUDED.name ELSE ci.name END,
        unit_price_minor = CASE WHEN EXCLUDED.product_version > ci.product_version THEN EXCLUDED.unit_price_minor ELSE ci.unit_price_minor END,
        currency_code = CASE WHEN EXCLUDED.product_version > ci.product_version THEN EXCLUDED.currency_code ELSE ci.currency_code END,
        available = CASE WHEN EXCLUDED.product_version > ci.product_version THEN true ELSE ci.available END,
        product_version = GREATEST(EXCLUDED.product_version, ci.product_version)
    RETURNING ci.quantity, ci.name, ci.unit_price_minor, ci.added_unit_price_minor, ci.currency_code,
              ci.product_version, ci.available
)
SELECT COALESCE((SELECT h.quantity FROM have h), 0)::integer AS had,
       (SELECT l.n FROM lines l)::bigint AS lines,
       EXISTS (SELECT 1 FROM put) AS written,
       COALESCE((SELECT p.quantity FROM put p), 0)::integer AS line_quantity,
       COALESCE((SELECT p.name FROM put p), '')::text AS line_name,
       COALESCE((SELECT p.unit_price_minor FROM put p), 0)::bigint AS line_unit_price_minor,
       COALESCE((SELECT p.added_unit_price_minor FROM put p), 0)::bigint AS line_added_unit_price_minor,
       COALESCE((SELECT p.currency_code FROM put p), '')::text AS line_currency_code,
       COALESCE((SELECT p.product_version FROM put p), 0)::bigint AS line_product_version,
       COALESCE((SELECT p.available FROM put p), false)::boolean AS line_available;

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
