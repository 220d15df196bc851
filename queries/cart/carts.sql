-- LockCart creates the user's cart if it has none and locks its row until
-- the transaction ends, so one user's cart writes run one at a time. It
-- returns the update_time before this write (now for a new cart).
-- name: LockCart :one
INSERT INTO carts (user_id, create_time, update_time)
VALUES (@user_id, @now, @now)
ON CONFLICT (user_id) DO UPDATE SET update_time = carts.update_time
RETURNING update_time;

-- TouchCart records a cart write at now; holds count while this is recent.
-- name: TouchCart :exec
UPDATE carts SET update_time = @now
WHERE user_id = @user_id;
