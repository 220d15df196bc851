-- Storage settings for the tables every cart write and event rewrites.
--
-- carts holds one small row per user that every cart write updates;
-- cart_items and product_versions rows are rewritten by cart writes and by
-- every applied product event. With the default fillfactor (100) a full
-- page leaves no room for the new row version on its own page, so updates
-- cannot be HOT (heap-only: no new index entries) and a user's lines
-- scatter over more pages; dead versions then pile up until autovacuum's
-- default threshold (20% of the table) is reached, and every cart read
-- walks them. Leaving room on each page and vacuuming these tables at 2%
-- of dead rows keeps a cart read at a few pages under a price storm.
--
-- New pages follow the fillfactor; pages written before this migration
-- keep their layout until rewritten (VACUUM FULL or pg_repack, optional).

-- +goose Up
ALTER TABLE carts SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 100);
ALTER TABLE cart_items SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 200);
ALTER TABLE product_versions SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 200);

-- +goose Down
ALTER TABLE product_versions RESET (fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold);
ALTER TABLE cart_items RESET (fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold);
ALTER TABLE carts RESET (fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold);
