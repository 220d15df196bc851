-- SaveRequestResult stores the result of a write made with a request_id,
-- replacing an expired entry (stored before cutoff) of the same id. The
-- caller holds the cart lock and found no live entry.
-- name: SaveRequestResult :exec
INSERT INTO request_results (user_id, request_id, fingerprint, response, create_time)
VALUES (@user_id, @request_id, @fingerprint, @response, @now)
ON CONFLICT (user_id, request_id) DO UPDATE
SET fingerprint = EXCLUDED.fingerprint, response = EXCLUDED.response,
    create_time = EXCLUDED.create_time
WHERE request_results.create_time < @cutoff;

-- PruneRequestResults deletes up to batch results stored before cutoff and
-- returns how many it deleted.
-- name: PruneRequestResults :execrows
DELETE FROM request_results
WHERE (user_id, request_id) IN (
    SELECT r.user_id, r.request_id FROM request_results r
    WHERE r.create_time < @cutoff
    LIMIT @batch
);
