-- LockRequest serializes writes carrying the same caller and request_id
-- until the end of the transaction, so that a retry racing its first
-- attempt waits for it and then finds its result.
-- name: LockRequest :exec
SELECT pg_advisory_xact_lock(hashtext('shop_request_results'), hashtext(@subject::text || ' ' || @request_id::text));

-- GetRequestResult returns the stored result of a caller's request_id,
-- unless it was stored before cutoff (past retention).
-- name: GetRequestResult :one
SELECT fingerprint, response FROM request_results
WHERE subject = @subject AND request_id = @request_id AND create_time >= @cutoff;

-- SaveRequestResult stores a write's result; an expired result under the
-- same id is replaced.
-- name: SaveRequestResult :exec
INSERT INTO request_results (subject, request_id, fingerprint, response, create_time)
VALUES (@subject, @request_id, @fingerprint, @response, @create_time)
ON CONFLICT (subject, request_id) DO UPDATE
SET fingerprint = EXCLUDED.fingerprint, response = EXCLUDED.response, create_time = EXCLUDED.create_time;

-- PruneRequestResults deletes up to batch results stored before cutoff.
-- name: PruneRequestResults :execrows
DELETE FROM request_results
WHERE (subject, request_id) IN (
    SELECT r.subject, r.request_id FROM request_results AS r
    WHERE r.create_time < @cutoff ORDER BY r.create_time LIMIT @batch::int
);
