package shopmigrate

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decoupledshop/shop/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	legacySchema  = pgtest.Schema{Name: "legacy", Role: "legacyshop", Migrate: CreateLegacySchema}
	cartSchema    = pgtest.CartSchema
	productSchema = pgtest.ProductSchema
)

// long skips t unless SHOP_LONG=1 asks for the long tests.
func long(t *testing.T) {
	t.Helper()
	if os.Getenv("SHOP_LONG") != "1" {
		t.Skip("a long test: set SHOP_LONG=1 to run it")
	}
}

// bundle is a generated legacy database and two freshly migrated service
// databases to split it into.
type bundle struct {
	legacy, product, cart *pgxpool.Pool
	cfg                   SplitConfig
}

// setup generates a legacy dataset of size and returns a split config
// targeting fresh service databases (users mapped by email, fractions
// rounded).
func setup(t *testing.T, size Size) *bundle {
	t.Helper()
	b := &bundle{}
	var legacyURL string
	b.legacy, legacyURL = pgtest.NewPool(t, legacySchema)
	began := time.Now()
	if err := Generate(t.Context(), legacyURL, size); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated the legacy dataset %+v in %s", size, time.Since(began).Round(time.Millisecond))
	b.cfg = SplitConfig{
		LegacyURL: legacyURL, Currency: "EUR", RoundFractions: true, BatchSize: 500, Overlap: time.Minute,
		Users: UserMapping{EmailRule: true, UnmappedPrefix: DefaultUnmappedPrefix},
	}
	b.retarget(t)
	return b
}

// retarget points the config at a fresh pair of service databases.
func (b *bundle) retarget(t *testing.T) {
	t.Helper()
	b.product, b.cfg.ProductURL = pgtest.NewPool(t, productSchema)
	b.cart, b.cfg.CartURL = pgtest.NewPool(t, cartSchema)
}

// split runs a split with cfg and fails the test on error.
func split(t *testing.T, cfg SplitConfig) *Report {
	t.Helper()
	rep, err := Split(context.Background(), cfg)
	if err != nil {
		var md strings.Builder
		if rep != nil {
			rep.Markdown(&md)
		}
		t.Fatalf("Split: %v\n%s", err, md.String())
	}
	return rep
}

// execSQL runs sql on db.
func execSQL(t *testing.T, db *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := db.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, db *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// targetTables are every table a split writes, with a key to sort by.
var targetTables = []struct{ db, table string }{
	{"product", "categories"}, {"product", "products"}, {"cart", "product_versions"}, {"cart", "promo_codes"},
	{"cart", "carts"}, {"cart", "cart_items"}, {"cart", "wishlists"}, {"cart", "wishlist_items"},
	{"cart", "cart_promo_codes"}, {"cart", "shopmigrate.users"}, {"cart", "shopmigrate.legacy_ids"},
	{"product", "shopmigrate.legacy_ids"},
}

// dump renders every row of every table a split writes, sorted, so that
// two splits can be compared whole.
func (b *bundle) dump(t *testing.T) string {
	t.Helper()
	var out []string
	for _, tt := range targetTables {
		db := b.product
		if tt.db == "cart" {
			db = b.cart
		}
		rows, err := db.Query(context.Background(), `SELECT t::text FROM `+tt.table+` t`)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, tt.table+" "+s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(lines)
		out = append(out, fmt.Sprintf("%s: %d rows", tt.table, len(lines)))
		out = append(out, lines...)
	}
	return strings.Join(out, "\n")
}

// firstDiff returns the first differing line of two dumps.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n  %s\n  %s", i, al[i], bl[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(al), len(bl))
}
