-- Claims by partition: claims of one subscriber no longer queue on one
-- lock (docs/EVENTS.md, "The relay algorithm", step 2).
--
-- Every claim of a subscriber took one advisory lock (00006) for its
-- whole transaction, commit included, and skipped the rows of products
-- leased to other claims with NOT EXISTS, which the planner ran as a
-- nested loop over all the subscriber's leased rows for every row the
-- claim walked (a claim of 256 rows behind 768 leased ones compared
-- 196,608 pairs). During shopload's backlog drain, 200 of 280 samples of
-- pg_stat_activity were claims waiting on that lock and the rest the one
-- claim holding it: the drain went as fast as one claim at a time.
--
-- Now each row belongs to one of outbox_claim_partitions() partitions by
-- its aggregate id (claim_partition, stored; all of a product's rows are
-- in one partition), and a claim locks partitions, not the subscriber: it
-- visits the partitions that have due rows from a random one, takes the
-- lock of each it can get at once (pg_try_advisory_xact_lock; one held by
-- another claim is passed over) and claims the due rows of each, oldest
-- due first, until it has max_rows. Claims of different partitions run at
-- once; claims of one partition still queue, so each sees the leases the
-- one before it committed, and a row whose product has a row leased to
-- another claim is still skipped (that claim held the same partition). A
-- claim that got nothing because the partitions with due rows were held
-- waits for the first it passed over, so it does not come back empty just
-- because other claims are running. The leased products of the partition
-- are read once into a hash (NOT IN over a subquery independent of the
-- walked row: a hashed subplan), one probe per walked row.
--
-- The partition is the aggregate id's last byte modulo the count: the same
-- on every PostgreSQL version and platform (a stored hash must not change
-- under pg_upgrade), and uniform for random (v4) and time-ordered (v7)
-- UUIDs alike. Changing outbox_claim_partitions() requires rewriting
-- claim_partition in the same migration, or a product's rows would sit in
-- two partitions.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION outbox_claim_partitions() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 16 $$;
-- +goose StatementEnd

ALTER TABLE outbox
    ADD COLUMN claim_partition smallint NOT NULL
    GENERATED ALWAYS AS ((get_byte(uuid_send(aggregate_id), 15) % outbox_claim_partitions())::smallint) STORED;

DROP INDEX outbox_due_idx;
DROP INDEX outbox_leased_idx;
CREATE INDEX outbox_due_idx ON outbox (subscriber, claim_partition, next_attempt_at);
CREATE INDEX outbox_leased_idx ON outbox (subscriber, claim_partition, aggregate_id) WHERE locked_by IS NOT NULL;

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
DECLARE
    parts CONSTANT integer := outbox_claim_partitions();
    first CONSTANT integer := floor(random() * parts)::integer;
    due integer[]; -- the partitions with due rows, from a random one
    part integer;
    passed integer; -- the first partition passed over, locked by another claim
    got bigint;
    wanted integer := claim_ordered_deliveries.max_rows;
BEGIN
    -- One index probe per partition finds those with due rows, so that a
    -- claim of a few rows (a trickle of changes) does not visit them all.
    SELECT coalesce(array_agg(p.part ORDER BY (p.part + parts - first) % parts), '{}') INTO due
    FROM generate_series(0, parts - 1) AS p (part)
    CROSS JOIN LATERAL (
        SELECT 1 FROM outbox AS d
        WHERE d.subscriber = claim_ordered_deliveries.subscriber
          AND d.claim_partition = p.part
          AND d.next_attempt_at <= claim_ordered_deliveries.due_before
          AND (d.locked_until IS NULL OR d.locked_until <= claim_ordered_deliveries.now)
        LIMIT 1) AS d;
    -- Steps 1 .. cardinality(due) visit them; the step after waits for
    -- the first one passed over when nothing was claimed.
    FOR step IN 1 .. cardinality(due) + 1 LOOP
        EXIT WHEN wanted <= 0;
        IF step <= cardinality(due) THEN
            part := due[step];
            IF NOT pg_try_advisory_xact_lock(hashtext('shop_outbox_claim'),
                                             hashtext(claim_ordered_deliveries.subscriber || '/' || part)) THEN
                passed := coalesce(passed, part);
                CONTINUE;
            END IF;
        ELSE
            EXIT WHEN wanted < claim_ordered_deliveries.max_rows OR passed IS NULL;
            part := passed;
            PERFORM pg_advisory_xact_lock(hashtext('shop_outbox_claim'),
                                          hashtext(claim_ordered_deliveries.subscriber || '/' || part));
        END IF;
        -- A statement of a VOLATILE function takes a fresh snapshot: it
        -- sees the leases the partition's last claim committed.
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
              AND d.claim_partition = part
              AND d.next_attempt_at <= claim_ordered_deliveries.due_before
              AND (d.locked_until IS NULL OR d.locked_until <= claim_ordered_deliveries.now)
              AND d.aggregate_id NOT IN (
                  SELECT l.aggregate_id FROM outbox AS l
                  WHERE l.subscriber = claim_ordered_deliveries.subscriber
                    AND l.claim_partition = part
                    AND l.locked_by IS NOT NULL AND l.locked_until > claim_ordered_deliveries.now)
            ORDER BY d.next_attempt_at
            LIMIT wanted
            FOR UPDATE SKIP LOCKED))
        RETURNING o.*;
        GET DIAGNOSTICS got = ROW_COUNT;
        wanted := wanted - got::integer;
    END LOOP;
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
DROP INDEX outbox_leased_idx;
DROP INDEX outbox_due_idx;
ALTER TABLE outbox DROP COLUMN claim_partition;
CREATE INDEX outbox_due_idx ON outbox (subscriber, next_attempt_at);
CREATE INDEX outbox_leased_idx ON outbox (subscriber, aggregate_id) WHERE locked_by IS NOT NULL;
DROP FUNCTION outbox_claim_partitions();
