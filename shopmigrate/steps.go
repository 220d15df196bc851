package shopmigrate

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Conflict resolutions, as SQL on the legacy database, so that the copy,
// the plan and the verification all resolve the same way. The row with the
// lowest id keeps its name or SKU; the others get their legacy id appended.
const (
	// categoryNameSQL is category c's name in productsvc.
	categoryNameSQL = `CASE WHEN EXISTS (SELECT 1 FROM categories d WHERE lower(d.name) = lower(c.name) AND d.id < c.id)
	THEN c.name || ' (legacy ' || c.id || ')' ELSE c.name END`
	// skuSQL is product p's SKU in productsvc (deleted products are not
	// copied there, so they hold no SKU).
	skuSQL = `CASE WHEN EXISTS (SELECT 1 FROM products q WHERE q.sku = p.sku AND q.id < p.id AND q.deleted_at IS NULL)
	THEN p.sku || '-L' || p.id ELSE p.sku END`
)

// productsAfter selects the batch of products after $1: up to $2, live
// ones in the first pass ($3 NULL), else those changed (or whose category
// changed) since $3. The batch is chosen from products alone, so that the
// primary key's order and the LIMIT bound the work.
const productsAfter = `SELECT * FROM products WHERE id > $1
	AND (($3::timestamptz IS NULL AND deleted_at IS NULL) OR updated_at >= $3
		OR category_id IN (SELECT id FROM categories WHERE updated_at >= $3))
	ORDER BY id LIMIT $2`

// idNamespace is the UUIDv5 namespace of legacy ids: the UUID of legacy
// row <table>:<id> is uuid.NewSHA1(idNamespace, "<table>:<id>").
var idNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/decoupledshop/shop/shopmigrate/legacy-ids"))

// LegacyUUID is the UUID legacy row id of table (categories or products)
// becomes: UUIDv5 of "<table>:<id>", the same in every run.
func LegacyUUID(table string, id int64) uuid.UUID {
	return uuid.NewSHA1(idNamespace, []byte(table+":"+strconv.FormatInt(id, 10)))
}

// legacyID is a row for shopmigrate.legacy_ids.
type legacyID struct {
	table string
	id    int64
	uuid  uuid.UUID
}

// batch is what one read of the legacy database gives one step.
type batch struct {
	last    int64       // keyset position after the batch
	read    int64       // legacy rows read
	rows    [][]any     // target rows, in the step's columns
	ids     []legacyID  // legacy ids of those rows
	parents []string    // children steps: the carts (wishlists) covered, by subject
	deleted []uuid.UUID // products: deleted in the legacy database
	// products: versions of live products by id, and their snapshot
	names  map[uuid.UUID]string
	prices map[uuid.UUID]int64
}

// step copies one target table.
type step struct {
	table   string
	db      string // "product" or "cart"
	columns []string
	// countSQL counts the legacy rows a pass reads ($1: since, NULL in the
	// first pass), for the progress bar.
	countSQL string
	// readSQL reads the batch after keyset position $1: up to $2 rows (or
	// parents), changed at or after $3 (NULL: all).
	readSQL string
	// parentBatch divides the batch size for steps reading by parent.
	parentBatch int
	// renames: readSQL takes the ids of renamed products and categories
	// as $4 and $5.
	renames bool
	// ownStage: upsert creates and fills table stage itself.
	ownStage bool
	scan     func(m *splitter, rows pgx.Rows, b *batch) error
	// upsert moves the catch-up batch in table stage into the table and
	// returns the rows it changed.
	upsert func(ctx context.Context, m *splitter, tx pgx.Tx, b *batch) (int64, error)
}

var (
	categoryColumns = []string{"id", "name", "description", "version", "create_time", "update_time"}
	productColumns  = []string{"id", "sku", "name", "description", "category_id", "category_name", "price_minor",
		"currency_code", "version", "create_time", "update_time"}
	versionColumns  = []string{"product_id", "version", "deleted", "update_time"}
	promoColumns    = []string{"code", "percent_off", "amount_off_minor", "currency_code", "max_redemptions", "start_time", "end_time", "active", "create_time"}
	ownerColumns    = []string{"user_id", "create_time", "update_time"}
	cartItemColumns = []string{"user_id", "product_id", "quantity", "name", "unit_price_minor", "added_unit_price_minor",
		"currency_code", "product_version", "available", "add_time", "update_time"}
	wishItemColumns = []string{"user_id", "product_id", "name", "price_minor", "currency_code", "product_version", "available", "add_time"}
	holdColumns     = []string{"user_id", "code", "apply_time"}
)

// steps are the tables in the order a pass copies them: productsvc's
// first (the cart's catch-up reads their versions), and in each database
// parents before children.
func steps() []*step {
	return []*step{
		{
			table: "categories", db: "product", columns: categoryColumns,
			countSQL: `SELECT count(*) FROM categories WHERE $1::timestamptz IS NULL OR updated_at >= $1`,
			readSQL: `SELECT c.id, ` + categoryNameSQL + `, c.description, c.created_at, c.updated_at FROM categories c
				WHERE c.id > $1 AND ($3::timestamptz IS NULL OR c.updated_at >= $3) ORDER BY c.id LIMIT $2`,
			scan: func(m *splitter, rows pgx.Rows, b *batch) error {
				var id int64
				var name, desc string
				var created, updated time.Time
				if err := rows.Scan(&id, &name, &desc, &created, &updated); err != nil {
					return err
				}
				u := LegacyUUID("categories", id)
				b.last = id
				b.rows = append(b.rows, []any{u, name, desc, int64(1), created, updated})
				b.ids = append(b.ids, legacyID{"categories", id, u})
				return nil
			},
			upsert: upsertSQL(`
INSERT INTO categories AS t (id, name, description, version, create_time, update_time)
SELECT id, name, description, version, create_time, update_time FROM stage
ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description,
    update_time = excluded.update_time, version = t.version + 1
WHERE (t.name, t.description) IS DISTINCT FROM (excluded.name, excluded.description)`),
		},
		{
			table: "products", db: "product", columns: productColumns,
			countSQL: `SELECT count(*) FROM products p JOIN categories c ON c.id = p.category_id
				WHERE ($1::timestamptz IS NULL AND p.deleted_at IS NULL) OR p.updated_at >= $1 OR c.updated_at >= $1`,
			renames: true,
			// The renames are those the checks listed ($4: products, $5:
			// categories), rather than each row looking for its duplicates
			// again; the verification derives them on its own.
			readSQL: `SELECT p.id, CASE WHEN p.id = ANY($4::bigint[]) THEN p.sku || '-L' || p.id ELSE p.sku END,
					p.name, p.description, p.category_id,
					CASE WHEN c.id = ANY($5::bigint[]) THEN c.name || ' (legacy ' || c.id || ')' ELSE c.name END,
					(p.price * 100)::bigint, p.created_at, p.updated_at, p.deleted_at IS NOT NULL
				FROM (` + productsAfter + `) p JOIN categories c ON c.id = p.category_id ORDER BY p.id`,
			scan: func(m *splitter, rows pgx.Rows, b *batch) error {
				var id, categoryID, price int64
				var sku, name, desc, categoryName string
				var created, updated time.Time
				var deleted bool
				if err := rows.Scan(&id, &sku, &name, &desc, &categoryID, &categoryName, &price, &created, &updated, &deleted); err != nil {
					return err
				}
				u := LegacyUUID("products", id)
				b.last = id
				if deleted {
					b.deleted = append(b.deleted, u)
					return nil
				}
				b.rows = append(b.rows, []any{u, sku, name, desc, LegacyUUID("categories", categoryID), categoryName, price,
					m.cfg.Currency, int64(1), created, updated})
				b.ids = append(b.ids, legacyID{"products", id, u})
				return nil
			},
			upsert: upsertProducts,
		},
		{
			table: "product_versions", db: "cart", columns: versionColumns,
			countSQL: `SELECT count(*) FROM products p JOIN categories c ON c.id = p.category_id
				WHERE $1::timestamptz IS NULL OR p.updated_at >= $1 OR c.updated_at >= $1`,
			readSQL: `SELECT p.id, p.deleted_at IS NOT NULL, p.name, (p.price * 100)::bigint, p.updated_at
				FROM (` + strings.Replace(productsAfter, "($3::timestamptz IS NULL AND deleted_at IS NULL)", "$3::timestamptz IS NULL", 1) + `) p
				ORDER BY p.id`,
			scan: func(m *splitter, rows pgx.Rows, b *batch) error {
				var id, price int64
				var deleted bool
				var name string
				var updated time.Time
				if err := rows.Scan(&id, &deleted, &name, &price, &updated); err != nil {
					return err
				}
				u := LegacyUUID("products", id)
				b.last = id
				b.rows = append(b.rows, []any{u, int64(1), deleted, updated})
				b.ids = append(b.ids, legacyID{"products", id, u})
				if b.names == nil {
					b.names, b.prices = map[uuid.UUID]string{}, map[uuid.UUID]int64{}
				}
				b.names[u], b.prices[u] = name, price
				return nil
			},
			upsert: upsertVersions, ownStage: true,
		},
		{
			table: "promo_codes", db: "cart", columns: promoColumns,
			countSQL: `SELECT count(*) FROM promo_codes WHERE $1::timestamptz IS NULL OR updated_at >= $1`,
			readSQL: `SELECT id, upper(code), percent_off, (amount_off * 100)::bigint, max_redemptions, starts_at, ends_at, active, created_at
				FROM promo_codes WHERE id > $1 AND ($3::timestamptz IS NULL OR updated_at >= $3) ORDER BY id LIMIT $2`,
			scan: func(m *splitter, rows pgx.Rows, b *batch) error {
				var id int64
				var code string
				var percent *int32
				var amount *int64
				var maxRed int32
				var start, end, created time.Time
				var active bool
				if err := rows.Scan(&id, &code, &percent, &amount, &maxRed, &start, &end, &active, &created); err != nil {
					return err
				}
				b.last = id
				b.rows = append(b.rows, []any{code, percent, amount, m.cfg.Currency, maxRed, start, end, active, created})
				return nil
			},
			upsert: upsertSQL(`
INSERT INTO promo_codes AS t SELECT * FROM stage
ON CONFLICT (code) DO UPDATE SET percent_off = excluded.percent_off, amount_off_minor = excluded.amount_off_minor,
    max_redemptions = excluded.max_redemptions, start_time = excluded.start_time, end_time = excluded.end_time,
    active = excluded.active
WHERE (t.percent_off, t.amount_off_minor, t.max_redemptions, t.start_time, t.end_time, t.active)
    IS DISTINCT FROM (excluded.percent_off, excluded.amount_off_minor, excluded.max_redemptions, excluded.start_time, excluded.end_time, excluded.active)`),
		},
		ownerStep("carts"),
		{
			table: "cart_items", db: "cart", columns: cartItemColumns, parentBatch: 8,
			countSQL: `SELECT count(*) FROM cart_items i JOIN carts c ON c.id = i.cart_id WHERE $1::timestamptz IS NULL OR c.updated_at >= $1`,
			readSQL: `WITH parents AS (
					SELECT id, user_id FROM carts WHERE id > $1 AND ($3::timestamptz IS NULL OR updated_at >= $3) ORDER BY id LIMIT $2)
				SELECT c.id, c.user_id, i.product_id, i.quantity, p.name, (p.price * 100)::bigint, (i.unit_price * 100)::bigint,
					p.deleted_at IS NULL, i.created_at, i.updated_at
				FROM parents c LEFT JOIN cart_items i ON i.cart_id = c.id LEFT JOIN products p ON p.id = i.product_id
				ORDER BY c.id`,
			scan: func(m *splitter, rows pgx.Rows, b *batch) error {
				var cartID, userID int64
				var productID, price, added *int64
				var quantity *int32
				var name *string
				var available *bool
				var created, updated *time.Time
				if err := rows.Scan(&cartID, &userID, &productID, &quantity, &name, &price, &added, &available, &created, &updated); err != nil {
					return err
				}
				sub := m.subjects[userID]
				if cartID != b.last || len(b.parents) == 0 {
					b.parents = append(b.parents, sub)
				}
				b.last = cartID
				if productID == nil {
					return nil
				}
				b.rows = append(b.rows, []any{sub, LegacyUUID("products", *productID), *quantity, *name, *price, *added,
					m.cfg.Currency, int64(1), *available, *created, *updated})
				return nil
			},
			upsert: upsertChildren("cart_items", `
INSERT INTO cart_items AS t
SELECT s.user_id, s.product_id, s.quantity, s.name, s.unit_price_minor, s.added_unit_price_minor, s.currency_code,
    coalesce(v.version, 1), s.available, s.add_time, s.update_time
FROM stage s LEFT JOIN product_versions v ON v.product_id = s.product_id
ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = excluded.quantity, name = excluded.name,
    unit_price_minor = excluded.unit_price_minor, added_unit_price_minor = excluded.added_unit_price_minor,
    product_version = excluded.product_version, available = excluded.available, update_time = excluded.update_time
WHERE (t.quantity, t.name, t.unit_price_minor, t.added_unit_price_minor, t.product_version, t.available, t.update_time)
    IS DISTINCT FROM (excluded.quantity, excluded.name, excluded.unit_price_minor, excluded.added_unit_price_minor,
        excluded.product_version, excluded.available, excluded.update_time)`, "product_id"),
		},
		ownerStep("wishlists"),
		{
			table: "wishlist_items", db: "cart", columns: wishItemColumns, parentBatch: 8,
			countSQL: `SELECT count(*) FROM wishlist_items i JOIN wishlists w ON w.id = i.wishlist_id WHERE $1::timestamptz IS NULL OR w.updated_at >= $1`,
			readSQL: `WITH parents AS (
					SELECT id, user_id FROM wishlists WHERE id > $1 AND ($3::timestamptz IS NULL OR updated_at >= $3) ORDER BY id LIMIT $2)
				SELECT w.id, w.user_id, i.product_id, p.name, (p.price * 100)::bigint, p.deleted_at IS NULL, i.created_at
				FROM parents w LEFT JOIN wishlist_items i ON i.wishlist_id = w.id LEFT JOIN products p ON p.id = i.product_id
				ORDER BY w.id`,
			scan: func(m *splitter, rows pgx.Rows, b *batch) error {
				var wishlistID, userID int64
				var productID, price *int64
				var name *string
				var available *bool
				var created *time.Time
				if err := rows.Scan(&wishlistID, &userID, &productID, &name, &price, &available, &created); err != nil {
					return err
				}
				sub := m.subjects[userID]
				if wishlistID != b.last || len(b.parents) == 0 {
					b.parents = append(b.parents, sub)
				}
				b.last = wishlistID
				if productID == nil {
					return nil
				}
				b.rows = append(b.rows, []any{sub, LegacyUUID("products", *productID), *name, *price, m.cfg.Currency, int64(1), *available, *created})
				return nil
			},
			upsert: upsertChildren("wishlist_items", `
INSERT INTO wishlist_items AS t
SELECT s.user_id, s.product_id, s.name, s.price_minor, s.currency_code, coalesce(v.version, 1), s.available, s.add_time
FROM stage s LEFT JOIN product_versions v ON v.product_id = s.product_id
ON CONFLICT (user_id, product_id) DO UPDATE SET name = excluded.name, price_minor = excluded.price_minor,
    product_version = excluded.product_version, available = excluded.available
WHERE (t.name, t.price_minor, t.product_version, t.available)
    IS DISTINCT FROM (excluded.name, excluded.price_minor, excluded.product_version, excluded.available)`, "product_id"),
		},
		{
			table: "cart_promo_codes", db: "cart", columns: holdColumns, parentBatch: 1,
			countSQL: `SELECT count(*) FROM cart_promo_codes h JOIN carts c ON c.id = h.cart_id WHERE $1::timestamptz IS NULL OR c.updated_at >= $1`,
			readSQL: `WITH parents AS (
					SELECT id, user_id FROM carts WHERE id > $1 AND ($3::timestamptz IS NULL OR updated_at >= $3) ORDER BY id LIMIT $2)
				SELECT c.id, c.user_id, upper(pc.code), h.applied_at
				FROM parents c LEFT JOIN cart_promo_codes h ON h.cart_id = c.id LEFT JOIN promo_codes pc ON pc.id = h.promo_code_id
				ORDER BY c.id`,
			scan: func(m *splitter, rows pgx.Rows, b *batch) error {
				var cartID, userID int64
				var code *string
				var applied *time.Time
				if err := rows.Scan(&cartID, &userID, &code, &applied); err != nil {
					return err
				}
				sub := m.subjects[userID]
				if cartID != b.last || len(b.parents) == 0 {
					b.parents = append(b.parents, sub)
				}
				b.last = cartID
				if code == nil {
					return nil
				}
				b.rows = append(b.rows, []any{sub, *code, *applied})
				return nil
			},
			upsert: upsertChildren("cart_promo_codes", `
INSERT INTO cart_promo_codes AS t SELECT * FROM stage
ON CONFLICT (user_id, code) DO UPDATE SET apply_time = excluded.apply_time
WHERE t.apply_time IS DISTINCT FROM excluded.apply_time`, "code"),
		},
	}
}

// ownerStep copies carts or wishlists: one row per legacy user who has one.
func ownerStep(table string) *step {
	return &step{
		table: table, db: "cart", columns: ownerColumns,
		countSQL: `SELECT count(*) FROM ` + table + ` WHERE $1::timestamptz IS NULL OR updated_at >= $1`,
		readSQL: `SELECT id, user_id, created_at, updated_at FROM ` + table + `
			WHERE id > $1 AND ($3::timestamptz IS NULL OR updated_at >= $3) ORDER BY id LIMIT $2`,
		scan: func(m *splitter, rows pgx.Rows, b *batch) error {
			var id, userID int64
			var created, updated time.Time
			if err := rows.Scan(&id, &userID, &created, &updated); err != nil {
				return err
			}
			b.last = id
			b.rows = append(b.rows, []any{m.subjects[userID], created, updated})
			return nil
		},
		upsert: upsertSQL(`
INSERT INTO ` + table + ` AS t SELECT * FROM stage
ON CONFLICT (user_id) DO UPDATE SET create_time = excluded.create_time, update_time = excluded.update_time
WHERE (t.create_time, t.update_time) IS DISTINCT FROM (excluded.create_time, excluded.update_time)`),
	}
}

// upsertSQL returns an upsert running sql (an INSERT from stage) and
// counting the rows it wrote.
func upsertSQL(sql string) func(context.Context, *splitter, pgx.Tx, *batch) (int64, error) {
	return func(ctx context.Context, m *splitter, tx pgx.Tx, b *batch) (int64, error) {
		tag, err := tx.Exec(ctx, sql)
		return tag.RowsAffected(), err
	}
}

// upsertChildren upserts the lines in stage and deletes the lines of the
// batch's parents that the legacy database no longer has (key is the
// column that, with user_id, identifies a line).
func upsertChildren(table, sql, key string) func(context.Context, *splitter, pgx.Tx, *batch) (int64, error) {
	del := fmt.Sprintf(`DELETE FROM %[1]s t WHERE t.user_id = ANY($1)
		AND NOT EXISTS (SELECT 1 FROM stage s WHERE s.user_id = t.user_id AND s.%[2]s = t.%[2]s)`, table, key)
	return func(ctx context.Context, m *splitter, tx pgx.Tx, b *batch) (int64, error) {
		tag, err := tx.Exec(ctx, sql)
		if err != nil {
			return 0, err
		}
		deleted, err := tx.Exec(ctx, del, b.parents)
		return tag.RowsAffected() + deleted.RowsAffected(), err
	}
}

// upsertProducts upserts changed products (a real change bumps the
// version, as an admin's update would) and deletes those deleted in the
// legacy database.
func upsertProducts(ctx context.Context, m *splitter, tx pgx.Tx, b *batch) (int64, error) {
	tag, err := tx.Exec(ctx, `
INSERT INTO products AS t SELECT * FROM stage
ON CONFLICT (id) DO UPDATE SET sku = excluded.sku, name = excluded.name, description = excluded.description,
    category_id = excluded.category_id, category_name = excluded.category_name, price_minor = excluded.price_minor,
    currency_code = excluded.currency_code, update_time = excluded.update_time, version = t.version + 1
WHERE (t.sku, t.name, t.description, t.category_id, t.category_name, t.price_minor, t.currency_code)
    IS DISTINCT FROM (excluded.sku, excluded.name, excluded.description, excluded.category_id, excluded.category_name,
        excluded.price_minor, excluded.currency_code)`)
	if err != nil {
		return 0, err
	}
	del, err := tx.Exec(ctx, `DELETE FROM products WHERE id = ANY($1)`, b.deleted)
	return tag.RowsAffected() + del.RowsAffected(), err
}

// upsertVersions raises the cart's high-water marks of changed products to
// productsvc's versions (a deletion: a tombstone one above the mark) and
// refreshes the snapshots of their cart lines and wishlist items, as the
// events of those changes would have.
func upsertVersions(ctx context.Context, m *splitter, tx pgx.Tx, b *batch) (int64, error) {
	ids := make([]uuid.UUID, len(b.rows))
	for i, r := range b.rows {
		ids[i] = r[0].(uuid.UUID)
	}
	rows, err := m.product.Query(ctx, `SELECT id, version FROM products WHERE id = ANY($1)`, ids)
	if err != nil {
		return 0, fmt.Errorf("read productsvc versions: %w", err)
	}
	versions := map[uuid.UUID]int64{}
	var id uuid.UUID
	var v int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &v}, func() error { versions[id] = v; return nil }); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE stage (product_id uuid, version bigint, deleted boolean,
		update_time timestamptz, name text, price_minor bigint) ON COMMIT DROP`); err != nil {
		return 0, err
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
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"stage"}, []string{"product_id", "version", "deleted", "update_time", "name", "price_minor"}, src); err != nil {
		return 0, err
	}
	var n int64
	err = tx.QueryRow(ctx, `
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
SELECT (SELECT count(*) FROM marks) + (SELECT count(*) FROM lines) + (SELECT count(*) FROM wishes)`).Scan(&n)
	return n, err
}
