-- CreateProduct inserts a product (the caller holds a FOR SHARE lock on its
-- category); a duplicate SKU fails with unique_violation.
-- name: CreateProduct :one
INSERT INTO products (id, sku, name, description, category_id, category_name,
                      price_minor, currency_code, version, create_time, update_time)
VALUES (@id, @sku, @name, @description, @category_id, @category_name,
        @price_minor, @currency_code, 1, @create_time, @create_time)
RETURNING *;

-- GetProduct returns one product by id.
-- name: GetProduct :one
SELECT * FROM products
WHERE id = @id;

-- LockProduct returns a product locked FOR UPDATE for an update or delete.
-- name: LockProduct :one
SELECT * FROM products
WHERE id = @id
FOR UPDATE;

-- BatchGetProducts returns the products among ids that exist, in one query.
-- name: BatchGetProducts :many
SELECT * FROM products
WHERE id = ANY(@ids::uuid[]);

-- ListProducts returns the page after the cursor (after_time, after_id) in
-- (create_time desc, id) order, with optional filters. query is matched with
-- full-text search over the expression that products_search_idx indexes.
-- name: ListProducts :many
SELECT * FROM products
WHERE create_time <= @after_time
  AND (create_time < @after_time OR id > @after_id)
  AND (sqlc.narg(category_id)::uuid IS NULL OR category_id = sqlc.narg(category_id))
  AND (sqlc.narg(query)::text IS NULL OR to_tsvector('simple', name || ' ' || description) @@ websearch_to_tsquery('simple', sqlc.narg(query)))
  AND (sqlc.narg(min_price_minor)::bigint IS NULL OR price_minor >= sqlc.narg(min_price_minor))
  AND (sqlc.narg(max_price_minor)::bigint IS NULL OR price_minor <= sqlc.narg(max_price_minor))
ORDER BY create_time DESC, id
LIMIT @page_limit;

-- UpdateProduct writes new field values and bumps the version.
-- name: UpdateProduct :one
UPDATE products
SET sku = @sku, name = @name, description = @description,
    category_id = @category_id, category_name = @category_name,
    price_minor = @price_minor, currency_code = @currency_code,
    version = version + 1, update_time = @update_time
WHERE id = @id
RETURNING *;

-- DeleteProduct deletes a product for good and returns the version its
-- tombstone event carries (the stored version + 1).
-- name: DeleteProduct :one
DELETE FROM products WHERE id = @id
RETURNING (version + 1)::bigint AS deleted_version;
