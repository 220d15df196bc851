-- CreatePromoCode inserts a code; a taken code fails with unique_violation
-- of promo_codes_pkey.
-- name: CreatePromoCode :one
INSERT INTO promo_codes (code, percent_off, amount_off_minor, currency_code,
                         max_redemptions, start_time, end_time, active, create_time)
VALUES (@code, sqlc.narg(percent_off), sqlc.narg(amount_off_minor), @currency_code,
        @max_redemptions, @start_time, @end_time, true, @create_time)
RETURNING *;

-- LockPromoCode returns a code locked against concurrent appliers (FOR NO
-- KEY UPDATE: foreign-key checks of other transactions are not blocked), so
-- counting its holds and adding one is atomic.
-- name: LockPromoCode :one
SELECT * FROM promo_codes
WHERE code = @code
FOR NO KEY UPDATE;

-- CountHolds returns how many carts hold the code and were written at or
-- after cutoff (older holds have lapsed and do not count).
-- name: CountHolds :one
SELECT count(*) FROM cart_promo_codes cp
JOIN carts c ON c.user_id = cp.user_id
WHERE cp.code = @code AND c.update_time >= @cutoff;

-- ListPromoCodes returns the page after the cursor (after_time, after_code)
-- in (create_time desc, code) order, each code with the number of carts
-- holding it (lapsed holds, of carts idle since before cutoff, not counted).
-- name: ListPromoCodes :many
SELECT p.code, p.percent_off, p.amount_off_minor, p.currency_code, p.max_redemptions,
       p.start_time, p.end_time, p.active, p.create_time,
       (SELECT count(*) FROM cart_promo_codes cp
        JOIN carts c ON c.user_id = cp.user_id
        WHERE cp.code = p.code AND c.update_time >= @cutoff)::bigint AS redemptions
FROM promo_codes p
WHERE p.create_time <= @after_time
  AND (p.create_time < @after_time OR p.code > @after_code)
ORDER BY p.create_time DESC, p.code
LIMIT @page_limit;

-- DeactivatePromoCode stops a code from being applied.
-- name: DeactivatePromoCode :one
UPDATE promo_codes SET active = false
WHERE code = @code
RETURNING *;

-- ReleaseHoldsOfCode deletes every hold of a code.
-- name: ReleaseHoldsOfCode :exec
DELETE FROM cart_promo_codes
WHERE code = @code;

-- ListCartHoldCodes returns every code the user's cart holds.
-- name: ListCartHoldCodes :many
SELECT code FROM cart_promo_codes
WHERE user_id = @user_id
ORDER BY apply_time, code;

-- AddHold records that the user's cart holds the code.
-- name: AddHold :exec
INSERT INTO cart_promo_codes (user_id, code, apply_time)
VALUES (@user_id, @code, @now);

-- ReleaseHold deletes the user's hold of a code (0 rows if none).
-- name: ReleaseHold :execrows
DELETE FROM cart_promo_codes
WHERE user_id = @user_id AND code = @code;

-- ReleaseCartHolds deletes every hold of the user's cart.
-- name: ReleaseCartHolds :exec
DELETE FROM cart_promo_codes
WHERE user_id = @user_id;

-- PruneLapsedHolds deletes up to batch holds of carts idle since before
-- cutoff and returns how many it deleted.
-- name: PruneLapsedHolds :execrows
DELETE FROM cart_promo_codes
WHERE (user_id, code) IN (
    SELECT cp.user_id, cp.code FROM cart_promo_codes cp
    JOIN carts c ON c.user_id = cp.user_id
    WHERE c.update_time < @cutoff
    LIMIT @batch
);
