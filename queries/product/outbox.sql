-- InsertOutboxEvents records events for every subscriber in one statement:
-- one row per (subscriber, event), queued and due at now. The parallel
-- arrays describe one event per index.
-- name: InsertOutboxEvents :execrows
INSERT INTO outbox (subscriber, event_id, type, aggregate_id, aggregate_version,
                    occurred_at, event, attempts, next_attempt_at, last_error, create_time)
SELECT s.subscriber, e.event_id, e.type, e.aggregate_id, e.aggregate_version,
       e.occurred_at, e.event, 0, @now, '', @now
FROM unnest(@subscribers::text[]) AS s (subscriber)
CROSS JOIN (
    SELECT unnest(@event_ids::uuid[]) AS event_id,
           unnest(@types::text[]) AS type,
           unnest(@aggregate_ids::uuid[]) AS aggregate_id,
           unnest(@aggregate_versions::bigint[]) AS aggregate_version,
           unnest(@occurred_ats::timestamptz[]) AS occurred_at,
           unnest(@events::bytea[]) AS event
) AS e;

-- ClaimDeliveries leases up to max_rows of a subscriber's rows due by
-- due_before to the claim claim_id until lease_until, and counts the claim
-- as an attempt. Rows another relay is claiming right now are skipped, not
-- waited for; leased rows are not due until their lease is over, so a relay
-- that dies leaves its rows to be claimed again after the lease; and a row
-- whose aggregate has a row leased to another claim is skipped, so each
-- product's events are held by one claim at a time. An ordinary claim
-- passes due_before = now; a probe passes infinity and one row. The
-- statement is the function claim_ordered_deliveries (migrations 00006 and
-- 00009): it visits the claim partitions (a product's rows are all in one)
-- from a random one, locks each it can at once, and claims each one's due
-- rows oldest due first, walking outbox_due_idx and stopping after the
-- batch whatever the statistics say; claims of different partitions run
-- at once.
-- name: ClaimDeliveries :many
SELECT * FROM claim_ordered_deliveries(@subscriber, @now, @due_before, @lease_until, @claim_id::uuid, @max_rows);

-- RenewLeases extends the lease of a claim's rows still held (the relay's
-- heartbeat while it delivers them).
-- name: RenewLeases :execrows
UPDATE outbox
SET next_attempt_at = @lease_until, locked_until = @lease_until
WHERE subscriber = @subscriber AND locked_by = @claim_id::uuid;

-- ReleaseDeliveries gives back rows of a claim that were never sent (the
-- relay is shutting down): due at once for any relay, their claim's attempt
-- uncounted.
-- name: ReleaseDeliveries :execrows
UPDATE outbox
SET next_attempt_at = @now, locked_until = NULL, locked_by = NULL, attempts = greatest(attempts - 1, 0)
WHERE subscriber = @subscriber AND locked_by = @claim_id::uuid AND event_id = ANY(@event_ids::uuid[]);

-- BringForwardDeliveries makes a subscriber's rows waiting for a retry
-- (not leased, due later than now) due at now: the subscriber answered
-- again, so their backoff no longer holds them.
-- name: BringForwardDeliveries :execrows
UPDATE outbox
SET next_attempt_at = @now
WHERE subscriber = @subscriber AND locked_by IS NULL AND next_attempt_at > @now;

-- DeleteDeliveries deletes the rows of a claim that reached a final state
-- (retention: delivered rows are not kept). Rows whose lease passed to
-- another claim are left to that claim.
-- name: DeleteDeliveries :execrows
DELETE FROM outbox
WHERE subscriber = @subscriber AND locked_by = @claim_id::uuid AND event_id = ANY(@event_ids::uuid[]);

-- RescheduleDeliveries releases rows of a claim after a transient failure:
-- each is due again at its own next_attempt_at, with its last error.
-- name: RescheduleDeliveries :execrows
UPDATE outbox AS o
SET next_attempt_at = r.next_attempt_at, last_error = r.last_error,
    locked_until = NULL, locked_by = NULL
FROM (
    SELECT unnest(@event_ids::uuid[]) AS event_id,
           unnest(@next_attempt_ats::timestamptz[]) AS next_attempt_at,
           unnest(@last_errors::text[]) AS last_error
) AS r
WHERE o.subscriber = @subscriber AND o.locked_by = @claim_id::uuid AND o.event_id = r.event_id;

-- DeadLetterDeliveries moves rows of a claim to outbox_dead, each with its
-- dead letter id and reason, keeping the attempt count.
-- name: DeadLetterDeliveries :execrows
WITH r AS (
    SELECT unnest(@event_ids::uuid[]) AS event_id,
           unnest(@ids::uuid[]) AS id,
           unnest(@reasons::text[]) AS reason
), dead AS (
    DELETE FROM outbox AS o
    USING r
    WHERE o.subscriber = @subscriber AND o.locked_by = @claim_id::uuid AND o.event_id = r.event_id
    RETURNING o.*
)
INSERT INTO outbox_dead (id, subscriber, event_id, type, aggregate_id, aggregate_version,
                         occurred_at, event, attempts, last_error, create_time)
SELECT r.id, dead.subscriber, dead.event_id, dead.type, dead.aggregate_id, dead.aggregate_version,
       dead.occurred_at, dead.event, dead.attempts, r.reason, @create_time
FROM dead JOIN r ON r.event_id = dead.event_id
ON CONFLICT (subscriber, event_id) DO UPDATE
SET attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error, create_time = EXCLUDED.create_time;

-- NextDelivery returns when a subscriber's next row is due (claimed rows
-- count from the end of their lease); no rows when it has none. It reads
-- the earliest of each claim partition from outbox_due_idx.
-- name: NextDelivery :one
SELECT n.next_attempt_at
FROM generate_series(0, outbox_claim_partitions() - 1) AS p (part)
CROSS JOIN LATERAL (
    SELECT o.next_attempt_at FROM outbox AS o
    WHERE o.subscriber = @subscriber AND o.claim_partition = p.part
    ORDER BY o.next_attempt_at
    LIMIT 1
) AS n
ORDER BY n.next_attempt_at
LIMIT 1;

-- NotifyOutbox wakes the relays that LISTEN on shop_outbox (relay.Channel).
-- It runs on its own, never inside a business transaction: NOTIFY takes a
-- cluster-wide lock at commit.
-- name: NotifyOutbox :exec
SELECT pg_notify('shop_outbox', '');
