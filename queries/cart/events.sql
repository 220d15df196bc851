-- RaiseProductVersions is the version gate of a batch of product events
-- (at most one per product): each product's high-water mark becomes the
-- event's version (deleted: its tombstone) unless the recorded version is
-- as new or newer or a tombstone. Events already in the inbox are left out.
-- It returns the products whose mark rose. Every product's mark row stays
-- locked until the transaction ends, raised or not (taken in product id
-- order, so concurrent batches queue instead of deadlocking).
-- name: RaiseProductVersions :many
INSERT INTO product_versions (product_id, version, deleted, update_time)
SELECT e.product_id, e.version, e.deleted, @now
FROM (SELECT unnest(@event_ids::uuid[]) AS event_id, unnest(@product_ids::uuid[]) AS product_id,
             unnest(@versions::bigint[]) AS version, unnest(@deleted::boolean[]) AS deleted) e
WHERE NOT EXISTS (SELECT 1 FROM inbox i WHERE i.event_id = e.event_id)
ORDER BY e.product_id
ON CONFLICT (product_id) DO UPDATE
SET version = EXCLUDED.version, deleted = EXCLUDED.deleted, update_time = EXCLUDED.update_time
WHERE product_versions.version < EXCLUDED.version AND NOT product_versions.deleted
RETURNING product_id;

-- ApplyEvents records a batch of events (at most one per product, after
-- RaiseProductVersions) in the inbox with their outcomes, and applies those
-- the inbox did not hold yet; it returns their ids (the others are
-- duplicates). aggregate_ids holds the nil UUID for an aggregate id that is
-- not a UUID; kinds is 'changed' (ProductChanged), 'deleted'
-- (ProductDeleted) or 'other'. Recording an event deletes its dead letter.
-- A ProductChanged that raised the mark, or is older than it (a stale one
-- still brings older copies forward), copies its state into the product's
-- cart lines and wishlist items holding an older snapshot
-- (added_unit_price_minor stays, so the cart shows price_changed); an
-- applied ProductDeleted makes them unavailable (kept, with their last
-- snapshot, so users see what went away).
-- name: ApplyEvents :many
WITH ev AS (
    SELECT unnest(@event_ids::uuid[]) AS event_id, unnest(@types::text[]) AS type,
           NULLIF(unnest(@aggregate_ids::uuid[]), '00000000-0000-0000-0000-000000000000'::uuid) AS aggregate_id,
           unnest(@versions::bigint[]) AS version, unnest(@kinds::text[]) AS kind,
           unnest(@outcomes::text[]) AS outcome, unnest(@names::text[]) AS name,
           unnest(@prices::bigint[]) AS price, unnest(@currencies::text[]) AS currency
), recorded AS (
    INSERT INTO inbox (event_id, type, aggregate_id, aggregate_version, outcome, peer, receive_time)
    SELECT ev.event_id, ev.type, ev.aggregate_id, ev.version, ev.outcome, @peer, @now FROM ev
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
), resolved AS (
    DELETE FROM event_dlq WHERE event_id IN (SELECT r.event_id FROM recorded r)
), fresh AS (
    SELECT ev.* FROM ev JOIN recorded r ON r.event_id = ev.event_id
), changed AS (
    SELECT f.aggregate_id, f.version, f.name, f.price, f.currency
    FROM fresh f LEFT JOIN product_versions pv ON pv.product_id = f.aggregate_id
    WHERE f.kind = 'changed' AND (f.outcome = 'applied' OR f.version < pv.version)
), gone AS (
    SELECT f.aggregate_id FROM fresh f WHERE f.kind = 'deleted' AND f.outcome = 'applied'
), cart_changed AS (
    UPDATE cart_items ci
    SET name = c.name, unit_price_minor = c.price, currency_code = c.currency, product_version = c.version
    FROM changed c
    WHERE ci.product_id = c.aggregate_id AND ci.product_version < c.version
), wishlist_changed AS (
    UPDATE wishlist_items wi
    SET name = c.name, price_minor = c.price, currency_code = c.currency, product_version = c.version
    FROM changed c
    WHERE wi.product_id = c.aggregate_id AND wi.product_version < c.version
), cart_gone AS (
    UPDATE cart_items SET available = false
    WHERE product_id IN (SELECT g.aggregate_id FROM gone g)
), wishlist_gone AS (
    UPDATE wishlist_items SET available = false
    WHERE product_id IN (SELECT g.aggregate_id FROM gone g)
)
SELECT r.event_id FROM recorded r;

-- NotifyProductVersion tells every replica listening on
-- cart_product_versions (at commit) that products' high-water marks rose;
-- payload is "<product id>:<version>[,<product id>:<version>...]", or
-- "@<time>" to read the marks raised at time from product_versions.
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
