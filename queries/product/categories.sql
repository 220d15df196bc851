-- CreateCategory inserts a category; the unique index on lower(name) makes a
-- duplicate name fail with unique_violation.
-- name: CreateCategory :one
INSERT INTO categories (id, name, description, version, create_time, update_time)
VALUES (@id, @name, @description, 1, @create_time, @create_time)
RETURNING *;

-- GetCategory returns one category by id.
-- name: GetCategory :one
SELECT * FROM categories WHERE id = @id;

-- ShareLockCategory takes a FOR SHARE lock on a category so it cannot be
-- deleted or renamed until the caller's transaction ends; no row means the
-- category does not exist (or was deleted while we waited).
-- name: ShareLockCategory :one
SELECT id, name FROM categories WHERE id = @id FOR SHARE;

-- LockCategory takes a FOR UPDATE lock on a category for an update or delete.
-- name: LockCategory :one
SELECT * FROM categories WHERE id = @id FOR UPDATE;

-- ListCategories returns the page after the cursor (after_time, after_id) in
-- (create_time desc, id) order. The first page passes a cursor after every row.
-- name: ListCategories :many
SELECT * FROM categories
WHERE create_time <= @after_time
  AND (create_time < @after_time OR id > @after_id)
ORDER BY create_time DESC, id
LIMIT @page_limit;

-- UpdateCategory sets the fields given (a NULL leaves a field as it is),
-- bumps the version and returns the new state with the name before, in one
-- statement that locks the row, if the category exists and is at
-- expected_version (when given). No row means it does not, or is at
-- another version: GetCategory tells which. A duplicate name fails with
-- unique_violation.
-- name: UpdateCategory :one
UPDATE categories AS c
SET name = coalesce(sqlc.narg(name), c.name),
    description = coalesce(sqlc.narg(description), c.description),
    version = c.version + 1, update_time = @update_time
FROM (SELECT o.id, o.name FROM categories AS o WHERE o.id = @id FOR UPDATE) AS old
WHERE c.id = old.id
  AND (sqlc.narg(expected_version)::bigint IS NULL OR c.version = sqlc.narg(expected_version))
RETURNING c.*, old.name AS old_name;

-- CategoryHasProducts reports whether any product references the category.
-- name: CategoryHasProducts :one
SELECT EXISTS (SELECT 1 FROM products WHERE category_id = @category_id);

-- DeleteCategory deletes a category (the caller holds its FOR UPDATE lock and
-- has checked that no product references it).
-- name: DeleteCategory :execrows
DELETE FROM categories WHERE id = @id;

-- RenameCategoryInProducts rewrites the denormalized category name on every
-- product of the category and bumps each product's version.
-- name: RenameCategoryInProducts :many
UPDATE products
SET category_name = @category_name, version = version + 1, update_time = @update_time
WHERE category_id = @category_id
RETURNING *;
