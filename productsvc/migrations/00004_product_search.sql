-- The search vector of every product, stored. ListProducts with a query used
-- to compute to_tsvector(name || ' ' || description) for each row it looked
-- at: the planner, which takes to_tsvector for cheap whatever the length of
-- the text, walked products_list_idx and discarded 760 rows to return 21.
-- With the vector stored, both ways are cheap, and the planner picks by
-- the word's frequency: the GIN index for rare words, a walk in list order
-- (product_search_list_idx) for words in most products.
--
-- The vectors live in a table of their own, kept by triggers, so that
-- reading a product never carries its vector. create_time is copied (it
-- never changes) so that a walk in list order needs no join.

-- +goose Up
CREATE TABLE product_search (
    id          uuid        PRIMARY KEY REFERENCES products (id) ON DELETE CASCADE,
    create_time timestamptz NOT NULL,
    -- The 'simple' configuration: no stemming or stop words; product names,
    -- brands and SKUs are matched as written, in any language.
    vector      tsvector    NOT NULL
);

INSERT INTO product_search (id, create_time, vector)
SELECT id, create_time, to_tsvector('simple', name || ' ' || description) FROM products;

CREATE INDEX product_search_idx ON product_search USING gin (vector);
CREATE INDEX product_search_list_idx ON product_search (create_time DESC, id);
DROP INDEX products_search_idx;

-- +goose StatementBegin
CREATE FUNCTION product_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO product_search (id, create_time, vector)
    VALUES (NEW.id, NEW.create_time, to_tsvector('simple', NEW.name || ' ' || NEW.description))
    ON CONFLICT (id) DO UPDATE SET vector = EXCLUDED.vector;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER product_search_insert AFTER INSERT ON products
    FOR EACH ROW EXECUTE FUNCTION product_search_sync();
CREATE TRIGGER product_search_update AFTER UPDATE OF name, description ON products
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.description IS DISTINCT FROM NEW.description)
    EXECUTE FUNCTION product_search_sync();

-- +goose Down
DROP TRIGGER product_search_update ON products;
DROP TRIGGER product_search_insert ON products;
DROP FUNCTION product_search_sync();
CREATE INDEX products_search_idx ON products
    USING gin (to_tsvector('simple', name || ' ' || description));
DROP TABLE product_search;
