-- Read when /metrics is scraped.

-- CountDeadLetters returns how many poison events wait in the DLQ.
-- name: CountDeadLetters :one
SELECT count(*)::bigint FROM event_dlq;
