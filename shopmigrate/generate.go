package shopmigrate

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/decoupledshop/shop/schema/legacy"
)

// Size is the size of a generated legacy dataset.
type Size struct {
	Users, Categories, Products, Carts, Items, WishlistItems, PromoCodes int
}

// SmallSize is the dataset of the default tests: every kind of dirt, in
// seconds.
var SmallSize = Size{Users: 300, Categories: 30, Products: 2000, Carts: 200, Items: 1500, WishlistItems: 300, PromoCodes: 12}

// LargeSize is the dataset of the long tests.
var LargeSize = Size{Users: 25000, Categories: 200, Products: 100000, Carts: 20000, Items: 200000, WishlistItems: 20000, PromoCodes: 40}

// CreateLegacySchema creates the legacy tables in the empty database at url.
func CreateLegacySchema(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("legacy database: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, legacy.Schema); err != nil {
		return fmt.Errorf("create the legacy schema: %w", err)
	}
	return nil
}

// Generate fills the legacy database at url, holding the legacy schema and
// no rows, with a deterministic dataset of size s, in one transaction.
func Generate(ctx context.Context, url string, s Size) error {
	if s.Carts > s.Users || s.PromoCodes < 4 || s.Categories < 1 || s.Products < 1 || s.Carts < 1 {
		return fmt.Errorf("dataset size %+v: want carts <= users, at least 4 promo codes and one category, product and cart", s)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("legacy database: %w", err)
	}
	defer conn.Close(ctx)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for name, v := range map[string]int{"users": s.Users, "categories": s.Categories, "products": s.Products,
			"carts": s.Carts, "items": s.Items, "wishlist_items": s.WishlistItems, "promo_codes": s.PromoCodes} {
			if _, err := tx.Exec(ctx, `SELECT set_config($1, $2, true)`, "legacy."+name, strconv.Itoa(v)); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, legacy.Generate); err != nil {
			return fmt.Errorf("generate the legacy dataset: %w", err)
		}
		return nil
	})
}
