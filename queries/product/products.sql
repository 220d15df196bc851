-- CreateProduct inserts a product into the category category_id, taking
-- the category's name, and locks the category FOR SHARE in the same
-- statement, so that it cannot be deleted or renamed until the product
-- commits. No row means no such category; a duplicate SKU fails with
-- unique_violation.
-- name: CreateProduct :one
INSERT INTO products (id, sku, name, description, category_id, category_name,
                      price_minor, currency_code, version, create_time, update_time)
SELECT @id, @sku, @name, @description, c.id, c.name,
       @price_minor, @currency_code, 1, @create_time, @create_time
FROM categories AS c
WHERE c.id = @category_id
FOR SHARE OF c
RETURNING *;

-- GetProduct returns one product by id.
-- name: GetProduct :one
SELECT * FROM products
WHERE id = @id;

-- BatchGetProducts returns the products among ids that exist, in one query.
-- name: BatchGetProducts :many
SELECT * FROM products
WHERE id = ANY(@ids::uuid[]);

-- ListProducts, ListCategoryProducts and SearchProducts page through
-- products in (create_time desc, id) order after the cursor (after_time,
-- after_id); the first page passes a cursor after every row. Each shape of
-- filter has a statement of its own, so that its plan is good for every
-- argument: a prepared statement may be run with a generic plan (one plan
-- for all arguments), and an optional condition ("$1 IS NULL OR …") there
-- can use no index. The price range stays optional: no index serves it.

-- ListProducts walks products_list_idx.
-- name: ListProducts :many
SELECT * FROM products
WHERE create_time <= @after_time
  AND (create_time < @after_time OR id > @after_id)
  AND (sqlc.narg(min_price_minor)::bigint IS NULL OR price_minor >= sqlc.narg(min_price_minor))
  AND (sqlc.narg(max_price_minor)::bigint IS NULL OR price_minor <= sqlc.narg(max_price_minor))
ORDER BY create_time DESC, id
LIMIT @page_limit;

-- ListCategoryProducts is ListProducts within one category; it walks
-- products_category_list_idx.
-- name: ListCategoryProducts :many
SELECT * FROM products
WHERE category_id = @category_id
  AND create_time <= @after_time
  AND (create_time < @after_time OR id > @after_id)
  AND (sqlc.narg(min_price_minor)::bigint IS NULL OR price_minor >= sqlc.narg(min_price_minor))
  AND (sqlc.narg(max_price_minor)::bigint IS NULL OR price_minor <= sqlc.narg(max_price_minor))
ORDER BY create_time DESC, id
LIMIT @page_limit;

-- SearchProducts is ListProducts of the products whose stored search
-- vector (product_search) matches query (websearch syntax), optionally
-- within one category. The match is unconditional, so that even a generic
-- plan can find the matches through product_search_idx.
-- name: SearchProducts :many
SELECT products.* FROM product_search AS s
JOIN products ON products.id = s.id
WHERE s.vector @@ websearch_to_tsquery('simple', @query)
  AND s.create_time <= @after_time
  AND (s.create_time < @after_time OR s.id > @after_id)
  AND (sqlc.narg(category_id)::uuid IS NULL OR products.category_id = sqlc.narg(category_id))
  AND (sqlc.narg(min_price_minor)::bigint IS NULL OR products.price_minor >= sqlc.narg(min_price_minor))
  AND (sqlc.narg(max_price_minor)::bigint IS NULL OR products.price_minor <= sqlc.narg(max_price_minor))
ORDER BY s.create_time DESC, s.id
LIMIT @page_limit;

-- UpdateProduct sets the fields given (a NULL leaves a field as it is; a
-- category is given with its name, read by ShareLockCategory), bumps the
-- version and returns the new state, in one statement, if the product
-- exists and is at expected_version (when given). No row means it does
-- not, or is at another version: GetProduct tells which.
-- name: UpdateProduct :one
UPDATE products
SET sku = coalesce(sqlc.narg(sku), sku),
    name = coalesce(sqlc.narg(name), name),
    description = coalesce(sqlc.narg(description), description),
    category_id = coalesce(sqlc.narg(category_id), category_id),
    category_name = coalesce(sqlc.narg(category_name), category_name),
    price_minor = coalesce(sqlc.narg(price_minor), price_minor),
    currency_code = coalesce(sqlc.narg(currency_code), currency_code),
    version = version + 1, update_time = @update_time
WHERE id = @id
  AND (sqlc.narg(expected_version)::bigint IS NULL OR version = sqlc.narg(expected_version))
RETURNING *;

-- DeleteProduct deletes a product for good and returns the version its
-- tombstone event carries (the stored version + 1).
-- name: DeleteProduct :one
DELETE FROM products WHERE id = @id
RETURNING (version + 1)::bigint AS deleted_version;
