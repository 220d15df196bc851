-- DeadLetterEvent stores a poison event, or, when its event id is already
-- dead-lettered, replaces that row's event, peer and reason and counts one
-- more attempt (a NULL event_id never conflicts).
-- name: DeadLetterEvent :exec
INSERT INTO event_dlq (id, event_id, type, aggregate_id, aggregate_version, event,
                       peer, reason, attempts, create_time, update_time)
VALUES (@id, sqlc.narg(event_id), @type, sqlc.narg(aggregate_id), @aggregate_version, @event,
        @peer, @reason, 1, @now, @now)
ON CONFLICT (event_id) DO UPDATE
SET event = EXCLUDED.event, peer = EXCLUDED.peer, reason = EXCLUDED.reason,
    attempts = event_dlq.attempts + 1, update_time = EXCLUDED.update_time;

-- RetainDeadLetter records that a replay found the dead letter still
-- poison: its new reason and one more attempt.
-- name: RetainDeadLetter :exec
UPDATE event_dlq
SET reason = @reason, attempts = attempts + 1, update_time = @now
WHERE id = @id;

-- DeleteDeadLetter removes one dead letter (whose event turned out to be
-- applied already).
-- name: DeleteDeadLetter :exec
DELETE FROM event_dlq WHERE id = @id;

-- ListDeadLetters returns the page of event_dlq after the cursor
-- (after_time, after_id) in (create_time desc, id) order.
-- name: ListDeadLetters :many
SELECT id, event, peer, reason, attempts, create_time FROM event_dlq
WHERE create_time <= @after_time
  AND (create_time < @after_time OR id > @after_id)
ORDER BY create_time DESC, id
LIMIT @page_limit;

-- GetDeadLetters returns the chosen dead letters that exist, oldest first.
-- name: GetDeadLetters :many
SELECT id, event, peer FROM event_dlq
WHERE id = ANY(@ids::uuid[])
ORDER BY create_time, id;

-- ListDeadLettersAfter returns up to batch dead letters after the cursor
-- (after_time, after_id) in (create_time, id) order, oldest first.
-- name: ListDeadLettersAfter :many
SELECT id, event, peer, create_time FROM event_dlq
WHERE (create_time, id) > (@after_time::timestamptz, @after_id::uuid)
ORDER BY create_time, id
LIMIT @batch;

-- PurgeDeadLetters deletes the chosen dead letters for good.
-- name: PurgeDeadLetters :execrows
DELETE FROM event_dlq WHERE id = ANY(@ids::uuid[]);

-- PurgeAllDeadLetters deletes every dead letter for good.
-- name: PurgeAllDeadLetters :execrows
DELETE FROM event_dlq;
