package shopmigrate

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
	legacydb "github.com/decoupledshop/shop/gen/sqlc/legacy"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
)

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
	keys    int         // keyset positions (rows, or parents) read
	read    int64       // legacy rows read
	rows    [][]any     // target rows, in the step's columns
	ids     []legacyID  // legacy ids of those rows
	parents []string    // children steps: the carts (wishlists) covered, by subject
	deleted []uuid.UUID // products: deleted in the legacy database
	promos  []promoKey  // promo codes: legacy ids and codes
	// products: versions of live products by id, and their snapshot
	names  map[uuid.UUID]string
	prices map[uuid.UUID]int64
}

// promoKey is a legacy promo code's id and the code it became.
type promoKey struct {
	id   int64
	code string
}

// add counts a keyset position (id) of the batch, holding rows legacy rows.
func (b *batch) add(id int64, rows int) {
	b.last, b.keys, b.read = id, b.keys+1, b.read+int64(rows)
}

// step copies one target table.
type step struct {
	table   string
	db      string // "product" or "cart"
	columns []string
	// count counts the legacy rows a pass reads (since: nil in the first
	// pass), for the progress bar.
	count func(ctx context.Context, q *legacydb.Queries, since *time.Time) (int64, error)
	// read reads the batch after keyset position after: up to limit rows
	// (or parents), changed at or after since (nil: all).
	read func(ctx context.Context, m *splitter, after int64, since *time.Time, limit int32) (*batch, error)
	// parentBatch divides the batch size for steps reading by parent.
	parentBatch int
	// ownStage: upsert creates and fills table stage itself.
	ownStage bool
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
		},
		{
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
		},
		{
			table: "product_versions", db: "cart", columns: versionColumns,
			count: func(ctx context.Context, q *legacydb.Queries, since *time.Time) (int64, error) {
				return q.CountProductVersions(ctx, since)
			},
			read: func(ctx context.Context, m *splitter, after int64, since *time.Time, limit int32) (*batch, error) {
				rows, err := m.lq.ReadProductVersions(ctx, legacydb.ReadProductVersionsParams{After: after, Since: since, MaxRows: limit})
				b := &batch{last: after, names: map[uuid.UUID]string{}, prices: map[uuid.UUID]int64{}}
				for _, r := range rows {
					u := LegacyUUID("products", r.ID)
					b.add(r.ID, 1)
					b.rows = append(b.rows, []any{u, int64(1), r.Deleted, r.UpdatedAt})
					b.ids = append(b.ids, legacyID{"products", r.ID, u})
					b.names[u], b.prices[u] = r.Name, r.PriceMinor
				}
				return b, err
			},
			upsert: upsertVersions, ownStage: true,
		},
		{
			table: "promo_codes", db: "cart", columns: promoColumns,
			count: func(ctx context.Context, q *legacydb.Queries, since *time.Time) (int64, error) {
				return q.CountPromoCodes(ctx, since)
			},
			read: func(ctx context.Context, m *splitter, after int64, since *time.Time, limit int32) (*batch, error) {
				rows, err := m.lq.ReadPromoCodes(ctx, legacydb.ReadPromoCodesParams{After: after, Since: since, MaxRows: limit})
				b := &batch{last: after}
				for _, r := range rows {
					var percent, amount any
					if r.PercentOff.Valid {
						percent = r.PercentOff.Int32
					}
					if r.HasAmountOff {
						amount = r.AmountOffMinor
					}
					b.add(r.ID, 1)
					b.promos = append(b.promos, promoKey{r.ID, r.Code})
					b.rows = append(b.rows, []any{r.Code, percent, amount, m.cfg.Currency, r.MaxRedemptions,
						r.StartsAt, r.EndsAt, r.Active, r.CreatedAt})
				}
				return b, err
			},
			upsert: upsertSQL(`
INSERT INTO promo_codes AS t SELECT * FROM stage
ON CONFLICT (code) DO UPDATE SET percent_off = excluded.percent_off, amount_off_minor = excluded.amount_off_minor,
    max_redemptions = excluded.max_redemptions, start_time = excluded.start_time, end_time = excluded.end_time,
    active = excluded.active
WHERE (t.percent_off, t.amount_off_minor, t.max_redemptions, t.start_time, t.end_time, t.active)
    IS DISTINCT FROM (excluded.percent_off, excluded.amount_off_minor, excluded.max_redemptions, excluded.start_time, excluded.end_time, excluded.active)`),
		},
		ownerStep("carts", (*legacydb.Queries).CountCarts,
			func(ctx context.Context, q *legacydb.Queries, after int64, since *time.Time, limit int32) ([]owner, error) {
				rows, err := q.ReadCarts(ctx, legacydb.ReadCartsParams{After: after, Since: since, MaxRows: limit})
				out := make([]owner, len(rows))
				for i, r := range rows {
					out[i] = owner(r)
				}
				return out, err
			}),
		{
			table: "cart_items", db: "cart", columns: cartItemColumns, parentBatch: 8,
			count: func(ctx context.Context, q *legacydb.Queries, since *time.Time) (int64, error) {
				return q.CountCartItems(ctx, since)
			},
			read: func(ctx context.Context, m *splitter, after int64, since *time.Time, limit int32) (*batch, error) {
				rows, err := m.lq.ReadCartItems(ctx, legacydb.ReadCartItemsParams{After: after, Since: since, MaxRows: limit})
				b := &batch{last: after}
				for _, r := range rows {
					sub := m.subjects[r.UserID]
					b.add(r.CartID, len(r.LineProductIds))
					b.parents = append(b.parents, sub)
					for i, pid := range r.LineProductIds {
						b.rows = append(b.rows, []any{sub, LegacyUUID("products", pid), r.LineQuantities[i], r.LineNames[i],
							r.LinePrices[i], r.LineAddedPrices[i], m.cfg.Currency, int64(1), r.LineAvailable[i],
							r.LineCreated[i], r.LineUpdated[i]})
					}
				}
				return b, err
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
		ownerStep("wishlists", (*legacydb.Queries).CountWishlists,
			func(ctx context.Context, q *legacydb.Queries, after int64, since *time.Time, limit int32) ([]owner, error) {
				rows, err := q.ReadWishlists(ctx, legacydb.ReadWishlistsParams{After: after, Since: since, MaxRows: limit})
				out := make([]owner, len(rows))
				for i, r := range rows {
					out[i] = owner(r)
				}
				return out, err
			}),
		{
			table: "wishlist_items", db: "cart", columns: wishItemColumns, parentBatch: 8,
			count: func(ctx context.Context, q *legacydb.Queries, since *time.Time) (int64, error) {
				return q.CountWishlistItems(ctx, since)
			},
			read: func(ctx context.Context, m *splitter, after int64, since *time.Time, limit int32) (*batch, error) {
				rows, err := m.lq.ReadWishlistItems(ctx, legacydb.ReadWishlistItemsParams{After: after, Since: since, MaxRows: limit})
				b := &batch{last: after}
				for _, r := range rows {
					sub := m.subjects[r.UserID]
					b.add(r.WishlistID, len(r.ItemProductIds))
					b.parents = append(b.parents, sub)
					for i, pid := range r.ItemProductIds {
						b.rows = append(b.rows, []any{sub, LegacyUUID("products", pid), r.ItemNames[i], r.ItemPrices[i],
							m.cfg.Currency, int64(1), r.ItemAvailable[i], r.ItemCreated[i]})
					}
				}
				return b, err
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
			count: func(ctx context.Context, q *legacydb.Queries, since *time.Time) (int64, error) {
				return q.CountCartPromoCodes(ctx, since)
			},
			read: func(ctx context.Context, m *splitter, after int64, since *time.Time, limit int32) (*batch, error) {
				rows, err := m.lq.ReadCartPromoCodes(ctx, legacydb.ReadCartPromoCodesParams{After: after, Since: since, MaxRows: limit})
				b := &batch{last: after}
				for _, r := range rows {
					sub := m.subjects[r.UserID]
					b.add(r.CartID, len(r.Codes))
					b.parents = append(b.parents, sub)
					for i, code := range r.Codes {
						b.rows = append(b.rows, []any{sub, code, r.Applied[i]})
					}
				}
				return b, err
			},
			upsert: upsertChildren("cart_promo_codes", `
INSERT INTO cart_promo_codes AS t SELECT * FROM stage
ON CONFLICT (user_id, code) DO UPDATE SET apply_time = excluded.apply_time
WHERE t.apply_time IS DISTINCT FROM excluded.apply_time`, "code"),
		},
	}
}

// owner is a legacy cart or wishlist.
type owner struct {
	ID, UserID           int64
	CreatedAt, UpdatedAt time.Time
}

// ownerStep copies carts or wishlists: one row per legacy user who has one.
func ownerStep(table string, count func(*legacydb.Queries, context.Context, *time.Time) (int64, error),
	read func(ctx context.Context, q *legacydb.Queries, after int64, since *time.Time, limit int32) ([]owner, error)) *step {
	return &step{
		table: table, db: "cart", columns: ownerColumns,
		count: func(ctx context.Context, q *legacydb.Queries, since *time.Time) (int64, error) {
			return count(q, ctx, since)
		},
		read: func(ctx context.Context, m *splitter, after int64, since *time.Time, limit int32) (*batch, error) {
			rows, err := read(ctx, m.lq, after, since, limit)
			b := &batch{last: after}
			for _, r := range rows {
				b.add(r.ID, 1)
				b.rows = append(b.rows, []any{m.subjects[r.UserID], r.CreatedAt, r.UpdatedAt})
			}
			return b, err
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
	var raised []string
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
SELECT (SELECT count(*) FROM marks) + (SELECT count(*) FROM lines) + (SELECT count(*) FROM wishes),
    (SELECT coalesce(array_agg(k.product_id::text || ':' || k.version), '{}') FROM marks k)`).Scan(&n, &raised)
	if err != nil {
		return 0, err
	}
	return n, notifyVersions(ctx, tx, raised)
}

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
