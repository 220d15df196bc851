-- claim_ordered_deliveries (00006) joined the rows it chose back to the
-- outbox with UPDATE ... FROM (subquery). With statistics taken while the
-- outbox was nearly empty (autovacuum analyzes a queue at whatever size it
-- has then), the planner put the subquery on the inner side of a nested
-- loop and ran the claim again for every outbox row: one claim took over
-- 15 s on a 5,000-row backlog while the other claims queued behind its
-- advisory lock, and delivery stopped (shopload's price storm after a
-- full catalog update). The chosen ids now come from an ARRAY(...)
-- subquery, which PostgreSQL evaluates once, before the UPDATE walks the
-- primary key for exactly those ids, whatever the statistics say.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION claim_ordered_deliveries(subscriber text, now timestamptz, due_before timestamptz,
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
    WHERE o.subscriber = claim_ordered_deliveries.subscriber
      AND o.event_id = ANY (ARRAY(
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
        FOR UPDATE SKIP LOCKED))
    RETURNING o.*;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION claim_ordered_deliveries(subscriber text, now timestamptz, due_before timestamptz,
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
