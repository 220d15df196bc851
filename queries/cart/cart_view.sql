-- GetCartView returns in one row everything a cart read needs, and what a
-- cart write needs before it takes the cart lock:
--   - the user's cart lines, oldest first, column by column (line_*), each
--     with the highest product version this service has heard of (0 if
--     none) and whether that version deleted the product; with_known false
--     skips that lookup (one index probe per line) and gives 0 and false;
--   - the codes the cart holds that give a discount now (hold_*): the cart
--     was written at or after hold_cutoff (the hold has not lapsed), and the
--     code is active and within its validity window at now; percent_off and
--     amount_off_minor are 0 where the code has none;
--   - the stored result of the user's request_id if one was stored at or
--     after request_cutoff (NULLs otherwise; request_id '' asks for none);
--   - the mark (mark_*) of the product fresh, if it has one;
--   - the cart's revision (see GetCartRevisions; 0 when there is no cart),
--     read in the same snapshot as the rest.
-- name: GetCartView :one
SELECT coalesce((SELECT c.xmin::text::bigint FROM carts c WHERE c.user_id = @user_id), 0)::bigint AS cart_revision,
       l.line_product_ids, l.line_quantities, l.line_names, l.line_unit_prices, l.line_added_unit_prices,
       l.line_currencies, l.line_versions, l.line_available, l.line_known_versions, l.line_known_deleted,
       h.hold_codes, h.hold_percent_offs, h.hold_amount_offs, h.hold_currencies,
       m.mark_ids, m.mark_versions, m.mark_deleted,
       r.fingerprint AS request_fingerprint, r.response AS request_response
FROM (
    SELECT coalesce(array_agg(ci.product_id ORDER BY ci.add_time, ci.product_id), '{}')::uuid[] AS line_product_ids,
           coalesce(array_agg(ci.quantity ORDER BY ci.add_time, ci.product_id), '{}')::integer[] AS line_quantities,
           coalesce(array_agg(ci.name ORDER BY ci.add_time, ci.product_id), '{}')::text[] AS line_names,
           coalesce(array_agg(ci.unit_price_minor ORDER BY ci.add_time, ci.product_id), '{}')::bigint[] AS line_unit_prices,
           coalesce(array_agg(ci.added_unit_price_minor ORDER BY ci.add_time, ci.product_id), '{}')::bigint[] AS line_added_unit_prices,
           coalesce(array_agg(ci.currency_code ORDER BY ci.add_time, ci.product_id), '{}')::text[] AS line_currencies,
           coalesce(array_agg(ci.product_version ORDER BY ci.add_time, ci.product_id), '{}')::bigint[] AS line_versions,
           coalesce(array_agg(ci.available ORDER BY ci.add_time, ci.product_id), '{}')::boolean[] AS line_available,
           coalesce(array_agg(COALESCE(pv.version, 0) ORDER BY ci.add_time, ci.product_id), '{}')::bigint[] AS line_known_versions,
           coalesce(array_agg(COALESCE(pv.deleted, false) ORDER BY ci.add_time, ci.product_id), '{}')::boolean[] AS line_known_deleted
    FROM cart_items ci
    -- LATERAL with LIMIT 1: always one index probe per line, whatever the
    -- statistics say (a join may become a scan of all of product_versions).
    LEFT JOIN LATERAL (
        SELECT v.version, v.deleted FROM product_versions v
        WHERE @with_known::boolean AND v.product_id = ci.product_id LIMIT 1
    ) pv ON true
    WHERE ci.user_id = @user_id
) l, (
    SELECT coalesce(array_agg(p.code ORDER BY cp.apply_time, cp.code), '{}')::text[] AS hold_codes,
           coalesce(array_agg(COALESCE(p.percent_off, 0) ORDER BY cp.apply_time, cp.code), '{}')::integer[] AS hold_percent_offs,
           coalesce(array_agg(COALESCE(p.amount_off_minor, 0) ORDER BY cp.apply_time, cp.code), '{}')::bigint[] AS hold_amount_offs,
           coalesce(array_agg(p.currency_code ORDER BY cp.apply_time, cp.code), '{}')::text[] AS hold_currencies
    FROM cart_promo_codes cp
    JOIN promo_codes p ON p.code = cp.code
    JOIN carts c ON c.user_id = cp.user_id
    WHERE cp.user_id = @user_id
      AND c.update_time >= @hold_cutoff
      AND p.active AND p.start_time <= @now AND p.end_time > @now
) h, (
    SELECT coalesce(array_agg(pv.product_id), '{}')::uuid[] AS mark_ids,
           coalesce(array_agg(pv.version), '{}')::bigint[] AS mark_versions,
           coalesce(array_agg(pv.deleted), '{}')::boolean[] AS mark_deleted
    FROM product_versions pv
    -- One product at most (the nil UUID for none), as a scalar: with an
    -- array ("= ANY(@fresh)") PostgreSQL planned this statement again on
    -- every run (its generic plan guessed many products) once
    -- product_versions was large, and scanned all of it when small.
    WHERE pv.product_id = @fresh::uuid
) m
LEFT JOIN request_results r
    ON r.user_id = @user_id AND r.request_id = @request_id AND r.create_time >= @request_cutoff;

-- GetCartRevisions returns the revision of each user's cart: the xmin of
-- its row, the transaction that last wrote it. Every cart write rewrites
-- the row (LockCart creates it, PrepareCartWrite updates it), so an equal
-- revision means no cart write has committed in between; a cart that is
-- deleted and created again gets a new one. A user without a cart has no
-- row.
-- name: GetCartRevisions :many
SELECT user_id, xmin::text::bigint AS revision FROM carts WHERE user_id = ANY(@user_ids::text[]);
