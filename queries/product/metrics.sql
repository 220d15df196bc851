-- Read when /metrics is scraped: the outbox backlog and the dead letters,
-- per subscriber.

-- OutboxBacklog returns, per subscriber with undelivered events, how many
-- there are and how long ago (by the database clock) the oldest was
-- queued.
-- name: OutboxBacklog :many
SELECT subscriber,
       count(*)::bigint AS depth,
       extract(epoch FROM now() - min(create_time))::float8 AS oldest_age_seconds
FROM outbox
GROUP BY subscriber;

-- DeadLetterCounts returns how many dead letters wait, per subscriber that
-- has any.
-- name: DeadLetterCounts :many
SELECT subscriber, count(*)::bigint AS dead
FROM outbox_dead
GROUP BY subscriber;
