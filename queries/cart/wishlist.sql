-- LockWishlist creates the user's wishlist if it has none and locks its row
-- until the transaction ends.
-- name: LockWishlist :exec
INSERT INTO wishlists (user_id, create_time, update_time)
VALUES (@user_id, @now, @now)
ON CONFLICT (user_id) DO UPDATE SET update_time = EXCLUDED.update_time;

-- ListWishlistItems returns the user's wishlist, newest first, with whether
-- the product is known to be deleted.
-- name: ListWishlistItems :many
SELECT wi.product_id, wi.name, wi.price_minor, wi.currency_code, wi.available, wi.add_time,
       COALESCE(pv.deleted, false)::boolean AS known_deleted
FROM wishlist_items wi
LEFT JOIN product_versions pv ON pv.product_id = wi.product_id
WHERE wi.user_id = @user_id
ORDER BY wi.add_time DESC, wi.product_id;

-- HasWishlistItem reports whether the product is on the user's wishlist.
-- name: HasWishlistItem :one
SELECT EXISTS (
    SELECT 1 FROM wishlist_items WHERE user_id = @user_id AND product_id = @product_id
)::boolean AS present;

-- CountWishlistItems returns how many products the user's wishlist holds.
-- name: CountWishlistItems :one
SELECT count(*) FROM wishlist_items
WHERE user_id = @user_id;

-- PutWishlistItem adds a product with a fresh snapshot, or refreshes the
-- snapshot of one already there (its add_time is kept) when the snapshot
-- is newer: an event applied while the write was in flight may have
-- brought the item past the snapshot the write read.
-- name: PutWishlistItem :exec
INSERT INTO wishlist_items AS wi (user_id, product_id, name, price_minor, currency_code,
                                  product_version, available, add_time)
VALUES (@user_id, @product_id, @name, @price_minor, @currency_code, @product_version, true, @now)
ON CONFLICT (user_id, product_id) DO UPDATE
SET name = EXCLUDED.name, price_minor = EXCLUDED.price_minor,
    currency_code = EXCLUDED.currency_code, product_version = EXCLUDED.product_version,
    available = true
WHERE EXCLUDED.product_version > wi.product_version;

-- DeleteWishlistItem removes a product from the wishlist (0 rows if absent).
-- name: DeleteWishlistItem :execrows
DELETE FROM wishlist_items
WHERE user_id = @user_id AND product_id = @product_id;
