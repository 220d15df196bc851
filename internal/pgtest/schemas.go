package pgtest

import (
	"context"
	"io/fs"

	cartmigrations "github.com/decoupledshop/shop/cartsvc/migrations"
	"github.com/decoupledshop/shop/internal/pgdb"
	productmigrations "github.com/decoupledshop/shop/productsvc/migrations"
)

// The two services' databases, declared once for every test that needs
// one: each owned by its service's own role and migrated with its
// service's migrations, as pgdb.Migrate applies them at start-up.
var (
	// ProductSchema is productsvc's database (role productsvc).
	ProductSchema = Schema{Name: "product", Role: "productsvc", Migrate: migrateWith(productmigrations.FS)}
	// CartSchema is cartsvc's database (role cartsvc).
	CartSchema = Schema{Name: "cart", Role: "cartsvc", Migrate: migrateWith(cartmigrations.FS)}
)

// migrateWith migrates a database with the migrations in fsys.
func migrateWith(fsys fs.FS) func(ctx context.Context, url string) error {
	return func(ctx context.Context, url string) error { return pgdb.Migrate(ctx, url, fsys) }
}
