-- A representative legacy database: what the system this project replaces
-- kept in ONE database, with foreign keys across what are now the
-- boundaries of productsvc (categories, products) and cartsvc (carts,
-- wishlists, promo codes). shopmigrate reads it; tests build it.
--
-- Its habits, which shopmigrate relies on and its README states:
--   * integer ids (bigserial), NUMERIC money in one shop currency;
--   * every table has updated_at, kept by a trigger; a write to a cart's
--     lines or promo codes (or a wishlist's items) also touches the cart's
--     (wishlist's) updated_at, so a catch-up pass finds every changed cart;
--   * users and products are deleted softly (deleted_at), since rows of
--     other tables still reference them.
--
-- Its dirt, on purpose: category names equal but for case, duplicate SKUs,
-- line prices with fractions of a cent (NUMERIC(12,4)), carts of deleted
-- users, lines of deleted products, expired and over-redeemed promo codes.

CREATE TABLE users (
    id         bigserial   PRIMARY KEY,
    email      text        NOT NULL,
    name       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX users_updated_at_idx ON users (updated_at);

CREATE TABLE categories (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX categories_lower_name_idx ON categories (lower(name));
CREATE INDEX categories_updated_at_idx ON categories (updated_at);

CREATE TABLE products (
    id          bigserial     PRIMARY KEY,
    sku         text          NOT NULL,
    name        text          NOT NULL,
    description text          NOT NULL DEFAULT '',
    category_id bigint        NOT NULL REFERENCES categories (id),
    price       numeric(12,2) NOT NULL CHECK (price >= 0),
    created_at  timestamptz   NOT NULL DEFAULT now(),
    updated_at  timestamptz   NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE INDEX products_sku_idx ON products (sku);
CREATE INDEX products_category_id_idx ON products (category_id);
CREATE INDEX products_updated_at_idx ON products (updated_at);

CREATE TABLE carts (
    id         bigserial   PRIMARY KEY,
    user_id    bigint      NOT NULL UNIQUE REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX carts_updated_at_idx ON carts (updated_at);

CREATE TABLE cart_items (
    id         bigserial     PRIMARY KEY,
    cart_id    bigint        NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    product_id bigint        NOT NULL REFERENCES products (id),
    quantity   integer       NOT NULL CHECK (quantity > 0),
    -- The price when the line was added, after the old per-line pricing
    -- rules: four decimals.
    unit_price numeric(12,4) NOT NULL,
    created_at timestamptz   NOT NULL DEFAULT now(),
    updated_at timestamptz   NOT NULL DEFAULT now(),
    UNIQUE (cart_id, product_id)
);
CREATE INDEX cart_items_product_id_idx ON cart_items (product_id);

CREATE TABLE wishlists (
    id         bigserial   PRIMARY KEY,
    user_id    bigint      NOT NULL UNIQUE REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX wishlists_updated_at_idx ON wishlists (updated_at);

CREATE TABLE wishlist_items (
    id          bigserial   PRIMARY KEY,
    wishlist_id bigint      NOT NULL REFERENCES wishlists (id) ON DELETE CASCADE,
    product_id  bigint      NOT NULL REFERENCES products (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (wishlist_id, product_id)
);
CREATE INDEX wishlist_items_product_id_idx ON wishlist_items (product_id);

CREATE TABLE promo_codes (
    id              bigserial     PRIMARY KEY,
    code            text          NOT NULL UNIQUE,
    percent_off     integer       CHECK (percent_off BETWEEN 1 AND 100),
    amount_off      numeric(12,2) CHECK (amount_off > 0),
    max_redemptions integer       NOT NULL DEFAULT 0,
    -- Counted by the old checkout; it overshot under concurrency.
    times_redeemed  integer       NOT NULL DEFAULT 0,
    starts_at       timestamptz   NOT NULL,
    ends_at         timestamptz   NOT NULL,
    active          boolean       NOT NULL DEFAULT true,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    updated_at      timestamptz   NOT NULL DEFAULT now(),
    CHECK ((percent_off IS NULL) <> (amount_off IS NULL))
);
CREATE INDEX promo_codes_updated_at_idx ON promo_codes (updated_at);

CREATE TABLE cart_promo_codes (
    cart_id       bigint      NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    promo_code_id bigint      NOT NULL REFERENCES promo_codes (id),
    applied_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cart_id, promo_code_id)
);

-- updated_at follows every update.
CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER categories_touch BEFORE UPDATE ON categories FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER products_touch BEFORE UPDATE ON products FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER carts_touch BEFORE UPDATE ON carts FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER cart_items_touch BEFORE UPDATE ON cart_items FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER wishlists_touch BEFORE UPDATE ON wishlists FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER wishlist_items_touch BEFORE UPDATE ON wishlist_items FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER promo_codes_touch BEFORE UPDATE ON promo_codes FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- A change to a cart's lines or codes touches the cart; a change to a
-- wishlist's items touches the wishlist.
CREATE FUNCTION touch_cart() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE carts SET updated_at = now()
    WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.cart_id ELSE NEW.cart_id END;
    RETURN NULL;
END
$$;

CREATE FUNCTION touch_wishlist() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE wishlists SET updated_at = now()
    WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.wishlist_id ELSE NEW.wishlist_id END;
    RETURN NULL;
END
$$;

CREATE TRIGGER cart_items_touch_cart AFTER INSERT OR UPDATE OR DELETE ON cart_items
    FOR EACH ROW EXECUTE FUNCTION touch_cart();
CREATE TRIGGER cart_promo_codes_touch_cart AFTER INSERT OR UPDATE OR DELETE ON cart_promo_codes
    FOR EACH ROW EXECUTE FUNCTION touch_cart();
CREATE TRIGGER wishlist_items_touch_wishlist AFTER INSERT OR UPDATE OR DELETE ON wishlist_items
    FOR EACH ROW EXECUTE FUNCTION touch_wishlist();
