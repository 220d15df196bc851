package shopmigrate

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	legacydb "github.com/decoupledshop/shop/gen/sqlc/legacy"
)

// The steps copying cartsvc's tables: the product versions its lines
// refer to, promo codes, and each user's cart and wishlist with their
// lines.

// versionStep copies the cart's high-water marks of products, with the
// names and prices a catch-up refreshes snapshots with (see upsertVersions).
func versionStep() *step {
	return &step{
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
	}
}

// promoStep copies promo codes.
func promoStep() *step {
	return &step{
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
	}
}

// cartStep copies carts.
func cartStep() *step {
	return ownerStep("carts", (*legacydb.Queries).CountCarts,
		func(ctx context.Context, q *legacydb.Queries, after int64, since *time.Time, limit int32) ([]owner, error) {
			rows, err := q.ReadCarts(ctx, legacydb.ReadCartsParams{After: after, Since: since, MaxRows: limit})
			out := make([]owner, len(rows))
			for i, r := range rows {
				out[i] = owner(r)
			}
			return out, err
		})
}

// cartItemStep copies cart lines, a batch of carts at a time.
func cartItemStep() *step {
	return &step{
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
	}
}

// wishlistStep copies wishlists.
func wishlistStep() *step {
	return ownerStep("wishlists", (*legacydb.Queries).CountWishlists,
		func(ctx context.Context, q *legacydb.Queries, after int64, since *time.Time, limit int32) ([]owner, error) {
			rows, err := q.ReadWishlists(ctx, legacydb.ReadWishlistsParams{After: after, Since: since, MaxRows: limit})
			out := make([]owner, len(rows))
			for i, r := range rows {
				out[i] = owner(r)
			}
			return out, err
		})
}

// wishItemStep copies wishlist items, a batch of wishlists at a time.
func wishItemStep() *step {
	return &step{
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
	}
}

// holdStep copies the promo codes held by carts, a cart at a time.
func holdStep() *step {
	return &step{
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
