-- ListDeadLetters returns the page of outbox_dead after the cursor
-- (after_time, after_id) in (create_time desc, id) order.
-- name: ListDeadLetters :many
SELECT * FROM outbox_dead
WHERE create_time <= @after_time
  AND (create_time < @after_time OR id > @after_id)
ORDER BY create_time DESC, id
LIMIT @page_limit;

-- ReplayDeadLetters moves the chosen dead letters back to the outbox with
-- attempts reset, queued and due at now, and returns how many were put back. A dead
-- letter whose event is already queued again for the same subscriber is
-- dropped (the queued row delivers it).
-- name: ReplayDeadLetters :execrows
WITH replayed AS (
    DELETE FROM outbox_dead WHERE id = ANY(@ids::uuid[])
    RETURNING *
)
INSERT INTO outbox (subscriber, event_id, type, aggregate_id, aggregate_version,
                    occurred_at, event, attempts, next_attempt_at, last_error, create_time)
SELECT subscriber, event_id, type, aggregate_id, aggregate_version,
       occurred_at, event, 0, @now, '', @now
FROM replayed
ON CONFLICT (subscriber, event_id) DO NOTHING;

-- ReplayAllDeadLetters is ReplayDeadLetters for every dead letter.
-- name: ReplayAllDeadLetters :execrows
WITH replayed AS (
    DELETE FROM outbox_dead
    RETURNING *
)
INSERT INTO outbox (subscriber, event_id, type, aggregate_id, aggregate_version,
                    occurred_at, event, attempts, next_attempt_at, last_error, create_time)
SELECT subscriber, event_id, type, aggregate_id, aggregate_version,
       occurred_at, event, 0, @now, '', @now
FROM replayed
ON CONFLICT (subscriber, event_id) DO NOTHING;

-- PurgeDeadLetters deletes the chosen dead letters for good.
-- name: PurgeDeadLetters :execrows
DELETE FROM outbox_dead WHERE id = ANY(@ids::uuid[]);

-- PurgeAllDeadLetters deletes every dead letter for good.
-- name: PurgeAllDeadLetters :execrows
DELETE FROM outbox_dead;
