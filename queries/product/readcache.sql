-- NotifyProductChanges tells every productsvc replica which products a
-- committed write changed, so each drops them from its read cache: payload
-- "<id>,<id>,..." or "*" for all (productsvc.ChangesChannel). Like
-- NotifyOutbox, it runs on its own, after the commit, never inside a
-- business transaction.
-- name: NotifyProductChanges :exec
SELECT pg_notify('shop_product_changes', @payload::text);
