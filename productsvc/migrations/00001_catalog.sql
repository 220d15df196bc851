-- The catalog: categories and products. products.category_id deliberately has
-- no foreign key (categories may move to another service later); integrity
-- comes from row locks on the category (FOR SHARE when a product is created
-- or moved, FOR UPDATE when a category is deleted).

-- +goose Up
CREATE TABLE categories (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    description text        NOT NULL DEFAULT '' CHECK (char_length(description) <= 2000),
    version     bigint      NOT NULL DEFAULT 1 CHECK (version > 0),
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL
);

CREATE UNIQUE INDEX categories_name_key ON categories (lower(name));
CREATE INDEX categories_list_idx ON categories (create_time DESC, id);

CREATE TABLE products (
    id            uuid        PRIMARY KEY,
    sku           text        NOT NULL,
    name          text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description   text        NOT NULL DEFAULT '' CHECK (char_length(description) <= 5000),
    category_id   uuid        NOT NULL,
    category_name text        NOT NULL,
    price_minor   bigint      NOT NULL CHECK (price_minor BETWEEN 0 AND 100000000000),
    currency_code text        NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    version       bigint      NOT NULL DEFAULT 1 CHECK (version > 0),
    create_time   timestamptz NOT NULL,
    update_time   timestamptz NOT NULL
);

CREATE UNIQUE INDEX products_sku_key ON products (sku);
CREATE INDEX products_list_idx ON products (create_time DESC, id);
CREATE INDEX products_category_list_idx ON products (category_id, create_time DESC, id);
-- Full-text search over name and description with the 'simple' configuration
-- (no stemming or stop words: product names, brands and SKUs are matched as
-- written, in any language). ListProducts repeats this exact expression so
-- the planner can use the index.
CREATE INDEX products_search_idx ON products
    USING gin (to_tsvector('simple', name || ' ' || description));

-- +goose Down
DROP TABLE products;
DROP TABLE categories;
