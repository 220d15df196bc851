-- ListCartItems returns the user's cart lines, oldest first.
-- name: ListCartItems :many
SELECT product_id, quantity, name, unit_price_minor, added_unit_price_minor,
       currency_code, product_version, available, add_time, update_time
FROM cart_items
WHERE user_id = $1
ORDER BY add_time, product_id;
