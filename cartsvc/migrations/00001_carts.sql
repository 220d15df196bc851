-- Carts, wishlists and promo codes. Users are OIDC subjects (text), never
-- rows of ours. Product data is a snapshot copied from productsvc and kept
-- fresh by events; product_versions holds the highest product version seen
-- (and a tombstone once deleted), so late or duplicate events are harmless.
-- Foreign keys only protect this service's own data.
--
-- Every cart write first locks the user's carts row, so one user's cart
-- writes run one at a time; update_time is the time of the last cart write
-- (a promo code hold lapses when the cart has been idle too long).

-- +goose Up
CREATE TABLE carts (
    user_id     text        PRIMARY KEY CHECK (char_length(user_id) BETWEEN 1 AND 255),
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL
);

-- One line per product. name, unit_price_minor, product_version and
-- available are the product snapshot (refreshed by writes and events);
-- added_unit_price_minor is the price when the line was last added to.
CREATE TABLE cart_items (
    user_id                text        NOT NULL REFERENCES carts (user_id) ON DELETE CASCADE,
    product_id             uuid        NOT NULL,
    quantity               integer     NOT NULL CHECK (quantity BETWEEN 1 AND 999),
    name                   text        NOT NULL,
    unit_price_minor       bigint      NOT NULL CHECK (unit_price_minor BETWEEN 0 AND 100000000000),
    added_unit_price_minor bigint      NOT NULL CHECK (added_unit_price_minor BETWEEN 0 AND 100000000000),
    currency_code          text        NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    product_version        bigint      NOT NULL CHECK (product_version > 0),
    available              boolean     NOT NULL DEFAULT true,
    add_time               timestamptz NOT NULL,
    update_time            timestamptz NOT NULL,
    PRIMARY KEY (user_id, product_id)
);

-- Events find every line of a product.
CREATE INDEX cart_items_product_idx ON cart_items (product_id);

CREATE TABLE wishlists (
    user_id     text        PRIMARY KEY CHECK (char_length(user_id) BETWEEN 1 AND 255),
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL
);

CREATE TABLE wishlist_items (
    user_id         text        NOT NULL REFERENCES wishlists (user_id) ON DELETE CASCADE,
    product_id      uuid        NOT NULL,
    name            text        NOT NULL,
    price_minor     bigint      NOT NULL CHECK (price_minor BETWEEN 0 AND 100000000000),
    currency_code   text        NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    product_version bigint      NOT NULL CHECK (product_version > 0),
    available       boolean     NOT NULL DEFAULT true,
    add_time        timestamptz NOT NULL,
    PRIMARY KEY (user_id, product_id)
);

CREATE INDEX wishlist_items_product_idx ON wishlist_items (product_id);

-- A promo code takes either percent_off or amount_off_minor (in
-- currency_code, the shop currency when it was created) off a cart's
-- subtotal from start_time (inclusive) to end_time (exclusive).
-- max_redemptions bounds the carts holding it at once (0: unlimited).
CREATE TABLE promo_codes (
    code             text        PRIMARY KEY CHECK (code ~ '^[A-Z0-9_-]{3,32}$'),
    percent_off      integer     CHECK (percent_off BETWEEN 1 AND 100),
    amount_off_minor bigint      CHECK (amount_off_minor BETWEEN 1 AND 100000000000),
    currency_code    text        NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    max_redemptions  integer     NOT NULL DEFAULT 0 CHECK (max_redemptions >= 0),
    start_time       timestamptz NOT NULL,
    end_time         timestamptz NOT NULL,
    active           boolean     NOT NULL DEFAULT true,
    create_time      timestamptz NOT NULL,
    CHECK (end_time > start_time),
    CHECK ((percent_off IS NULL) <> (amount_off_minor IS NULL))
);

CREATE INDEX promo_codes_list_idx ON promo_codes (create_time DESC, code);

-- A hold: the cart holds the code. It counts against max_redemptions only
-- while the cart's update_time is within the configured idle time; older
-- holds have lapsed and are deleted when their cart is next written (or by
-- the janitor).
CREATE TABLE cart_promo_codes (
    user_id    text        NOT NULL REFERENCES carts (user_id) ON DELETE CASCADE,
    code       text        NOT NULL REFERENCES promo_codes (code),
    apply_time timestamptz NOT NULL,
    PRIMARY KEY (user_id, code)
);

CREATE INDEX cart_promo_codes_code_idx ON cart_promo_codes (code);

-- The highest version of each product this service has heard of (from
-- events), and whether that version is its deletion. Cached product data
-- older than this is never served.
CREATE TABLE product_versions (
    product_id  uuid        PRIMARY KEY,
    version     bigint      NOT NULL CHECK (version > 0),
    deleted     boolean     NOT NULL DEFAULT false,
    update_time timestamptz NOT NULL
);

-- The result of a cart write sent with a request_id: a repeat of the same
-- request within the retention window gets response back instead of being
-- applied again. fingerprint identifies the request (procedure and fields);
-- response is the marshalled response message. Written in the transaction
-- of the write itself.
CREATE TABLE request_results (
    user_id     text        NOT NULL CHECK (char_length(user_id) BETWEEN 1 AND 255),
    request_id  text        NOT NULL CHECK (char_length(request_id) BETWEEN 1 AND 64),
    fingerprint bytea       NOT NULL,
    response    bytea       NOT NULL,
    create_time timestamptz NOT NULL,
    PRIMARY KEY (user_id, request_id)
);

CREATE INDEX request_results_create_time_idx ON request_results (create_time);

-- +goose Down
DROP TABLE request_results;
DROP TABLE product_versions;
DROP TABLE cart_promo_codes;
DROP TABLE promo_codes;
DROP TABLE wishlist_items;
DROP TABLE wishlists;
DROP TABLE cart_items;
DROP TABLE carts;
