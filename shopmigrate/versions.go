package shopmigrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
)

// upsertVersions raises the cart's high-water marks of changed products to
// productsvc's versions (a deletion: a tombstone one above the mark) and
// refreshes the snapshots of their cart lines and wishlist items, as the
// events of those changes would have.
func upsertVersions(ctx context.Context, m *splitter, tx pgx.Tx, b *batch) (int64, error) {
	versions, err := m.productVersions(ctx, b)
	if err != nil {
		return 0, err
	}
	if err := stageVersions(ctx, tx, b, versions); err != nil {
		return 0, err
	}
	var n int64
	var raised []string
	if err := tx.QueryRow(ctx, raiseVersionsSQL).Scan(&n, &raised); err != nil {
		return 0, err
	}
	return n, notifyVersions(ctx, tx, raised)
}

// productVersions reads productsvc's versions of the batch's products.
func (m *splitter) productVersions(ctx context.Context, b *batch) (map[uuid.UUID]int64, error) {
	ids := make([]uuid.UUID, len(b.rows))
	for i, r := range b.rows {
		ids[i] = r[0].(uuid.UUID)
	}
	rows, err := m.product.Query(ctx, `SELECT id, version FROM products WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read productsvc versions: %w", err)
	}
	versions := map[uuid.UUID]int64{}
	var id uuid.UUID
	var v int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &v}, func() error { versions[id] = v; return nil }); err != nil {
		return nil, err
	}
	return versions, nil
}

// stageVersions COPYs the batch into the transaction's table stage, at
// productsvc's versions: a product productsvc no longer has is a
// tombstone, numbered by raiseVersionsSQL.
func stageVersions(ctx context.Context, tx pgx.Tx, b *batch, versions map[uuid.UUID]int64) error {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE stage (product_id uuid, version bigint, deleted boolean,
		update_time timestamptz, name text, price_minor bigint) ON COMMIT DROP`); err != nil {
		return err
	}
	src := pgx.CopyFromSlice(len(b.rows), func(i int) ([]any, error) {
		r := b.rows[i]
		u, deleted := r[0].(uuid.UUID), r[2].(bool)
		var version any = versions[u]
		if deleted || versions[u] == 0 {
			version, deleted = nil, true // a tombstone, numbered below
		}
		return []any{u, version, deleted, r[3], b.names[u], b.prices[u]}, nil
	})
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"stage"}, []string{"product_id", "version", "deleted", "update_time", "name", "price_minor"}, src)
	return err
}

// raiseVersionsSQL raises the marks in stage and refreshes the snapshots
// of the lines and wishlist items of the products it raised; it returns
// the rows it changed and the raised marks ("<product id>:<version>").
const raiseVersionsSQL = `
WITH marks AS (
    INSERT INTO product_versions AS t (product_id, version, deleted, update_time)
    SELECT s.product_id, coalesce(s.version, v.version + 1, 1), s.deleted, s.update_time
    FROM stage s LEFT JOIN product_versions v ON v.product_id = s.product_id
    ON CONFLICT (product_id) DO UPDATE SET version = excluded.version, deleted = excluded.deleted, update_time = excluded.update_time
    WHERE t.version < excluded.version AND NOT t.deleted
    RETURNING t.product_id, t.version, t.deleted
), lines AS (
    UPDATE cart_items i SET name = CASE WHEN k.deleted THEN i.name ELSE s.name END,
        unit_price_minor = CASE WHEN k.deleted THEN i.unit_price_minor ELSE s.price_minor END,
        product_version = CASE WHEN k.deleted THEN i.product_version ELSE k.version END,
        available = NOT k.deleted
    FROM marks k JOIN stage s ON s.product_id = k.product_id
    WHERE i.product_id = k.product_id
    RETURNING 1
), wishes AS (
    UPDATE wishlist_items i SET name = CASE WHEN k.deleted THEN i.name ELSE s.name END,
        price_minor = CASE WHEN k.deleted THEN i.price_minor ELSE s.price_minor END,
        product_version = CASE WHEN k.deleted THEN i.product_version ELSE k.version END,
        available = NOT k.deleted
    FROM marks k JOIN stage s ON s.product_id = k.product_id
    WHERE i.product_id = k.product_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM marks) + (SELECT count(*) FROM lines) + (SELECT count(*) FROM wishes),
    (SELECT coalesce(array_agg(k.product_id::text || ':' || k.version), '{}') FROM marks k)`

// maxNotifyPayload keeps a notification's payload under PostgreSQL's
// 8000-byte limit.
const maxNotifyPayload = 7000

// notifyVersions announces raised marks ("<product id>:<version>") on
// cartsvc's VersionsChannel at the commit of tx, as cartsvc does for the
// events it applies, so that running replicas stop serving older cached
// product data: a catch-up pass raised them, so the events it queued for
// them will be STALE there.
func notifyVersions(ctx context.Context, tx pgx.Tx, marks []string) error {
	q := cartdb.New(tx)
	for len(marks) > 0 {
		n, size := 0, 0
		for n < len(marks) && size+len(marks[n])+1 <= maxNotifyPayload {
			size += len(marks[n]) + 1
			n++
		}
		if err := q.NotifyProductVersion(ctx, strings.Join(marks[:n], ",")); err != nil {
			return err
		}
		marks = marks[n:]
	}
	return nil
}
