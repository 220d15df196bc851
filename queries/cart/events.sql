-- RaiseProductVersion records version as the product's high-water mark
-- (deleted: its tombstone) and reports 1 row, unless the recorded version
-- is as new or newer or a tombstone: then it changes nothing and reports 0
-- (the event is stale). Concurrent raises of one product queue on its row.
-- name: RaiseProductVersion :execrows
INSERT INTO product_versions (product_id, version, deleted, update_time)
VALUES (@product_id, @version, @deleted, @now)
ON CONFLICT (product_id) DO UPDATE
SET version = EXCLUDED.version, deleted = EXCLUDED.deleted, update_time = EXCLUDED.update_time
WHERE product_versions.version < EXCLUDED.version AND NOT product_versions.deleted;

-- RecordInboxEvent records a received event and deletes its dead letter,
-- if any; it reports 0 rows when the event id is already in the inbox (a
-- duplicate), and the caller then rolls back.
-- name: RecordInboxEvent :execrows
WITH resolved AS (
    DELETE FROM event_dlq WHERE event_dlq.event_id = @event_id
)
INSERT INTO inbox (event_id, type, aggregate_id, aggregate_version, outcome, peer, receive_time)
VALUES (@event_id, @type, sqlc.narg(aggregate_id), @aggregate_version, @outcome, @peer, @now)
ON CONFLICT (event_id) DO NOTHING;

-- RefreshCartLines copies a product's new state into every cart line of it
-- holding an older snapshot (added_unit_price_minor stays, so the cart
-- shows price_changed) and reports how many it changed.
-- name: RefreshCartLines :execrows
UPDATE cart_items
SET name = @name, unit_price_minor = @unit_price_minor, currency_code = @currency_code,
    product_version = @version
WHERE product_id = @product_id AND product_version < @version;

-- RefreshWishlistItems is RefreshCartLines for wishlists.
-- name: RefreshWishlistItems :execrows
UPDATE wishlist_items
SET name = @name, price_minor = @price_minor, currency_code = @currency_code,
    product_version = @version
WHERE product_id = @product_id AND product_version < @version;

-- MarkCartLinesDeleted makes every cart line of a deleted product
-- unavailable (kept, with its last snapshot, so the user sees what went
-- away; product_version stays the snapshot's version).
-- name: MarkCartLinesDeleted :execrows
UPDATE cart_items SET available = false
WHERE product_id = @product_id;

-- MarkWishlistItemsDeleted is MarkCartLinesDeleted for wishlists.
-- name: MarkWishlistItemsDeleted :execrows
UPDATE wishlist_items SET available = false
WHERE product_id = @product_id;

-- NotifyProductVersion tells every replica listening on
-- cart_product_versions (at commit) that a product's high-water mark rose;
-- payload is "<product id>:<version>".
-- name: NotifyProductVersion :exec
SELECT pg_notify('cart_product_versions', @payload::text);

-- ListProductVersionsSince returns up to max_rows marks raised at or after
-- since, newest first: what a replica whose listening connection was down
-- may have missed.
-- name: ListProductVersionsSince :many
SELECT product_id, version FROM product_versions
WHERE update_time >= @since
ORDER BY update_time DESC
LIMIT @max_rows;

-- PruneInbox deletes up to batch inbox rows received before cutoff and
-- returns how many it deleted.
-- name: PruneInbox :execrows
DELETE FROM inbox
WHERE event_id IN (
    SELECT i.event_id FROM inbox i
    WHERE i.receive_time < @cutoff
    LIMIT @batch
);
