-- Claims that keep each product's order across relays and lanes, and the
-- lease hand-over (docs/EVENTS.md, "Leases, hand-over and recovery").
--
-- Several relays, each with several lanes, deliver one subscriber's events
-- at once. A claim skips every row whose aggregate has a row leased to
-- another claim right now, so the events of one product are held by one
-- claim at a time and are sent in order; claims of one subscriber take a
-- transaction advisory lock first, so that each sees the leases the one
-- before it committed (the function is VOLATILE: its UPDATE takes a fresh
-- snapshot after the lock). A claim holds the lock for the length of one
-- indexed UPDATE.
--
-- due_before is now for an ordinary claim; a probe (the subscriber failed
-- and may be back) passes infinity and one row: the earliest row that is
-- not leased, whatever its backoff.

-- +goose Up
CREATE INDEX outbox_leased_idx ON outbox (subscriber, aggregate_id) WHERE locked_by IS NOT NULL;

-- +goose StatementBegin
CREATE FUNCTION claim_ordered_deliveries(subscriber text, now timestamptz, due_before timestamptz,
                                         lease_until timestamptz, claim_id uuid, max_rows integer)
RETURNS SETOF outbox
LANGUAGE plpgsql
VOLATILE
SET enable_sort = off
SET enable_bitmapscan = off
SET enable_seqscan = off
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('shop_outbox_claim'), hashtext(claim_ordered_deliveries.subscriber));
    RETURN QUERY
    UPDATE outbox AS o
    SET attempts = o.attempts + 1,
        next_attempt_at = claim_ordered_deliveries.lease_until,
        locked_until = claim_ordered_deliveries.lease_until,
        locked_by = claim_ordered_deliveries.claim_id
    FROM (
        SELECT d.event_id FROM outbox AS d
        WHERE d.subscriber = claim_ordered_deliveries.subscriber
          AND d.next_attempt_at <= claim_ordered_deliveries.due_before
          AND (d.locked_until IS NULL OR d.locked_until <= claim_ordered_deliveries.now)
          AND NOT EXISTS (
              SELECT 1 FROM outbox AS l
              WHERE l.subscriber = d.subscriber AND l.aggregate_id = d.aggregate_id
                AND l.locked_by IS NOT NULL AND l.locked_until > claim_ordered_deliveries.now)
        ORDER BY d.next_attempt_at
        LIMIT claim_ordered_deliveries.max_rows
        FOR UPDATE SKIP LOCKED
    ) AS due
    WHERE o.subscriber = claim_ordered_deliveries.subscriber AND o.event_id = due.event_id
    RETURNING o.*;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION claim_ordered_deliveries(text, timestamptz, timestamptz, timestamptz, uuid, integer);
DROP INDEX outbox_leased_idx;
