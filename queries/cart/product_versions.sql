-- GetProductVersions returns the highest version this service has heard of
-- for each of ids that it has heard of, and whether it was a deletion.
-- name: GetProductVersions :many
SELECT product_id, version, deleted FROM product_versions
WHERE product_id = ANY(@ids::uuid[]);
