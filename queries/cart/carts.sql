-- LockCart locks the user's cart row until the transaction ends, creating
-- the cart if it has none, so one user's cart writes run one at a time. It
-- returns the update_time before this write (now for a new cart) and the
-- cart's revision before it (see GetCartRevisions; 0 for a new cart). Locking
-- an existing row writes no new row version (an INSERT ... ON CONFLICT DO
-- UPDATE would, on the hottest rows of the table). No row comes back when
-- another transaction created the cart concurrently: run it again.
-- name: LockCart :one
WITH locked AS (
    SELECT c.update_time, c.xmin::text::bigint AS revision FROM carts c WHERE c.user_id = @user_id FOR UPDATE
), created AS (
    INSERT INTO carts (user_id, create_time, update_time)
    SELECT @user_id, @now, @now
    WHERE NOT EXISTS (SELECT 1 FROM locked)
    ON CONFLICT (user_id) DO NOTHING
    RETURNING update_time
)
SELECT l.update_time, l.revision FROM locked l
UNION ALL
SELECT c.update_time, 0::bigint FROM created c;

-- PrepareCartWrite runs after LockCart: it returns the stored result of
-- the user's request_id if one was stored at or after request_cutoff
-- (NULLs otherwise; request_id '' asks for none). Unless there is one (the
-- write is a repeat, and nothing changes), it deletes the holds that no
-- longer give a discount (all of them when lapsed: the cart was idle too
-- long; else those of codes deactivated or past their end_time) and
-- records the cart write at now (holds count while this is recent).
-- name: PrepareCartWrite :one
WITH stored AS (
    SELECT r.fingerprint, r.response FROM request_results r
    WHERE r.user_id = @user_id AND r.request_id = @request_id AND r.create_time >= @request_cutoff
), dropped AS (
    DELETE FROM cart_promo_codes cp
    USING promo_codes p
    WHERE NOT EXISTS (SELECT 1 FROM stored)
      AND cp.user_id = @user_id AND p.code = cp.code
      AND (@lapsed::boolean OR NOT p.active OR p.end_time <= @now)
), touched AS (
    UPDATE carts SET update_time = @now
    WHERE user_id = @user_id AND NOT EXISTS (SELECT 1 FROM stored)
)
SELECT (SELECT s.fingerprint FROM stored s)::bytea AS request_fingerprint,
       (SELECT s.response FROM stored s)::bytea AS request_response;
