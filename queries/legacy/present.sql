-- What the legacy database holds now, key by key, for a catch-up pass to
-- find the rows deleted for good (not softly) since the pass before:
-- updated_at cannot show a row that is gone.

-- ListCategoryIDs lists every category's id.
-- name: ListCategoryIDs :many
SELECT id FROM categories;

-- ListProductIDs lists every product's id, deleted softly or not.
-- name: ListProductIDs :many
SELECT id FROM products;

-- ListCartOwners lists the users who have a cart.
-- name: ListCartOwners :many
SELECT user_id FROM carts;

-- ListWishlistOwners lists the users who have a wishlist.
-- name: ListWishlistOwners :many
SELECT user_id FROM wishlists;

-- ListPromoCodeIDs lists every promo code's id.
-- name: ListPromoCodeIDs :many
SELECT id FROM promo_codes;
