package shopmigrate

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	legacydb "github.com/decoupledshop/shop/gen/sqlc/legacy"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
)

// The steps copying productsvc's tables, and their catch-up upserts,
// which queue the events productsvc would have written.

// categoryStep copies categories.
func categoryStep() *step {
	return &step{
		table: "categories", db: "product", columns: categoryColumns,
		count: func(ctx context.Context, q *legacydb.Queries, since *time.Time) (int64, error) {
			return q.CountCategories(ctx, since)
		},
		read: func(ctx context.Context, m *splitter, after int64, since *time.Time, limit int32) (*batch, error) {
			rows, err := m.lq.ReadCategories(ctx, legacydb.ReadCategoriesParams{
				Renamed: m.renamed["categories"], After: after, Since: since, MaxRows: limit})
			b := &batch{last: after}
			for _, r := range rows {
				u := LegacyUUID("categories", r.ID)
				b.add(r.ID, 1)
				b.rows = append(b.rows, []any{u, r.Name, r.Description, int64(1), r.CreatedAt, r.UpdatedAt})
				b.ids = append(b.ids, legacyID{"categories", r.ID, u})
			}
			return b, err
		},
		upsert: upsertCategories,
	}
}

// productStep copies live products (and collects deleted ones, which a
// catch-up pass deletes), with their category's name.
func productStep() *step {
	return &step{
		table: "products", db: "product", columns: productColumns,
		count: func(ctx context.Context, q *legacydb.Queries, since *time.Time) (int64, error) {
			return q.CountProducts(ctx, since)
		},
		// The renames are those the checks listed, rather than each
		// row looking for its duplicates again; the verification
		// derives them on its own.
		read: func(ctx context.Context, m *splitter, after int64, since *time.Time, limit int32) (*batch, error) {
			rows, err := m.lq.ReadProducts(ctx, legacydb.ReadProductsParams{
				RenamedProducts: m.renamed["products"], RenamedCategories: m.renamed["categories"],
				After: after, Since: since, MaxRows: limit})
			b := &batch{last: after}
			for _, r := range rows {
				u := LegacyUUID("products", r.ID)
				b.add(r.ID, 1)
				if r.Deleted {
					b.deleted = append(b.deleted, u)
					continue
				}
				b.rows = append(b.rows, []any{u, r.Sku, r.Name, r.Description, LegacyUUID("categories", r.CategoryID),
					r.CategoryName, r.PriceMinor, m.cfg.Currency, int64(1), r.CreatedAt, r.UpdatedAt})
				b.ids = append(b.ids, legacyID{"products", r.ID, u})
			}
			return b, err
		},
		upsert: upsertProducts,
	}
}

// upsertCategories upserts new and changed categories (a real change
// bumps the version) with their CategoryChanged events, as productsvc's
// CreateCategory and UpdateCategory would.
func upsertCategories(ctx context.Context, m *splitter, tx pgx.Tx, b *batch) (int64, error) {
	rows, err := tx.Query(ctx, `
INSERT INTO categories AS t (id, name, description, version, create_time, update_time)
SELECT id, name, description, version, create_time, update_time FROM stage
ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description,
    update_time = excluded.update_time, version = t.version + 1
WHERE (t.name, t.description) IS DISTINCT FROM (excluded.name, excluded.description)
RETURNING t.id, t.name, t.description, t.version, t.create_time, t.update_time`)
	if err != nil {
		return 0, err
	}
	changed, err := pgx.CollectRows(rows, pgx.RowToStructByPos[productdb.Category])
	if err != nil {
		return 0, err
	}
	for _, c := range changed {
		if err := m.events.CategoryChanged(ctx, tx, c); err != nil {
			return 0, err
		}
	}
	return int64(len(changed)), nil
}

// upsertProducts upserts new and changed products (a real change bumps
// the version, as an admin's update would) and deletes those deleted in
// the legacy database, with the events productsvc would have written:
// ProductChanged with each product's new state, ProductDeleted at the
// deleted product's version + 1.
func upsertProducts(ctx context.Context, m *splitter, tx pgx.Tx, b *batch) (int64, error) {
	rows, err := tx.Query(ctx, `
INSERT INTO products AS t SELECT * FROM stage
ON CONFLICT (id) DO UPDATE SET sku = excluded.sku, name = excluded.name, description = excluded.description,
    category_id = excluded.category_id, category_name = excluded.category_name, price_minor = excluded.price_minor,
    currency_code = excluded.currency_code, update_time = excluded.update_time, version = t.version + 1
WHERE (t.sku, t.name, t.description, t.category_id, t.category_name, t.price_minor, t.currency_code)
    IS DISTINCT FROM (excluded.sku, excluded.name, excluded.description, excluded.category_id, excluded.category_name,
        excluded.price_minor, excluded.currency_code)
RETURNING t.id, t.sku, t.name, t.description, t.category_id, t.category_name, t.price_minor, t.currency_code,
    t.version, t.create_time, t.update_time`)
	if err != nil {
		return 0, err
	}
	changed, err := pgx.CollectRows(rows, pgx.RowToStructByPos[productdb.Product])
	if err != nil {
		return 0, err
	}
	if err := m.events.ProductsChanged(ctx, tx, changed); err != nil {
		return 0, err
	}
	rows, err = tx.Query(ctx, `DELETE FROM products WHERE id = ANY($1) RETURNING 0::bigint, id, version + 1`, b.deleted)
	if err != nil {
		return 0, err
	}
	deleted, err := pgx.CollectRows(rows, pgx.RowToStructByPos[deletedProduct])
	if err != nil {
		return 0, err
	}
	for _, d := range deleted {
		if err := m.events.ProductDeleted(ctx, tx, d.ID, d.Version); err != nil {
			return 0, err
		}
	}
	return int64(len(changed) + len(deleted)), nil
}
