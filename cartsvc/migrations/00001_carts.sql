-- Carts, wishlists and promo codes. Users are OIDC subjects (text), never
-- rows of ours. Product data is a snapshot copied from productsvc and kept
-- fresh by events; product_versions holds the highest product version seen
-- (and a tombstone once deleted), so late or duplicate events are harmless.
-- Foreign keys only protect this service's own data.

-- +goose Up
CREATE TABLE carts (
    user_id     text        PRIMARY KEY CHECK (char_length(user_id) BETWEEN 1 AND 255),
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL
);

CREATE TABLE cart_items (
    user_id                text        NOT NULL REFERENCES carts (user_id) ON DELETE CASCADE,
    product_id             uuid        NOT NULL,
    quantity               integer     NOT NULL CHECK (quantity BETWEEN 1 AND 999),
    name                   text        NOT NULL,
    unit_price_minor       bigint      NOT NULL CHECK (unit_price_minor >= 0),
    added_unit_price_minor bigint      NOT NULL CHECK (added_unit_price_minor >= 0),
    currency_code          text        NOT NULL,
    product_version        bigint      NOT NULL,
    available              boolean     NOT NULL DEFAULT true,
    add_time               timestamptz NOT NULL,
    update_time            timestamptz NOT NULL,
    PRIMARY KEY (user_id, product_id)
);

CREATE INDEX cart_items_product_idx ON cart_items (product_id);

CREATE TABLE wishlist_items (
    user_id         text        NOT NULL CHECK (char_length(user_id) BETWEEN 1 AND 255),
    product_id      uuid        NOT NULL,
    name            text        NOT NULL,
    price_minor     bigint      NOT NULL CHECK (price_minor >= 0),
    currency_code   text        NOT NULL,
    product_version bigint      NOT NULL,
    available       boolean     NOT NULL DEFAULT true,
    add_time        timestamptz NOT NULL,
    PRIMARY KEY (user_id, product_id)
);

CREATE INDEX wishlist_items_product_idx ON wishlist_items (product_id);

CREATE TABLE promo_codes (
    code             text        PRIMARY KEY CHECK (code ~ '^[A-Z0-9_-]{3,32}$'),
    percent_off      integer     CHECK (percent_off BETWEEN 1 AND 100),
    amount_off_minor bigint      CHECK (amount_off_minor > 0),
    currency_code    text        NOT NULL,
    max_redemptions  integer     NOT NULL DEFAULT 0 CHECK (max_redemptions >= 0),
    start_time       timestamptz NOT NULL,
    end_time         timestamptz NOT NULL CHECK (end_time > start_time),
    active           boolean     NOT NULL DEFAULT true,
    create_time      timestamptz NOT NULL,
    CHECK ((percent_off IS NULL) <> (amount_off_minor IS NULL))
);

CREATE INDEX promo_codes_list_idx ON promo_codes (create_time DESC, code);

CREATE TABLE cart_promo_codes (
    user_id    text        NOT NULL REFERENCES carts (user_id) ON DELETE CASCADE,
    code       text        NOT NULL REFERENCES promo_codes (code),
    apply_time timestamptz NOT NULL,
    PRIMARY KEY (user_id, code)
);

CREATE INDEX cart_promo_codes_code_idx ON cart_promo_codes (code);

CREATE TABLE product_versions (
    product_id  uuid        PRIMARY KEY,
    version     bigint      NOT NULL CHECK (version > 0),
    deleted     boolean     NOT NULL DEFAULT false,
    update_time timestamptz NOT NULL
);

-- +goose Down
DROP TABLE product_versions;
DROP TABLE cart_promo_codes;
DROP TABLE promo_codes;
DROP TABLE wishlist_items;
DROP TABLE cart_items;
DROP TABLE carts;
