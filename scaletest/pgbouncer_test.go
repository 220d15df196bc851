package scaletest_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/decoupledshop/shop/cartsvc"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
	"github.com/decoupledshop/shop/shopload"
)

var (
	cartSchema    = pgtest.CartSchema
	productSchema = pgtest.ProductSchema
)

// pooled starts a PgBouncer in transaction mode in front of the test
// cluster's databases dbURLs (each logging in as its own role) and
// returns their pooled URLs, in order.
func pooled(t *testing.T, dbURLs ...string) []string {
	t.Helper()
	if _, err := os.Stat(shopload.PgBouncerBin); err != nil {
		t.Skipf("no PgBouncer at %s (apt-get install pgbouncer)", shopload.PgBouncerBin)
	}
	cfg := shopload.PgBouncerConfig{Dir: filepath.Join(tempDir(t), "pgbouncer"), PoolSize: 10}
	for _, u := range dbURLs {
		c, err := pgx.ParseConfig(u)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ServerSocketDir = c.Host
		cfg.Databases = append(cfg.Databases, c.Database)
		cfg.Users = append(cfg.Users, c.User)
	}
	b, err := shopload.StartPgBouncer(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	var out []string
	for i := range dbURLs {
		out = append(out, b.URL(cfg.Users[i], cfg.Databases[i]))
	}
	return out
}

// tempDir is a directory the postgres user can reach when the test runs
// as root (t.TempDir may be under /root), removed at the end.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "scaletest-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestServicesThroughPgBouncer runs both real mains with their pools
// through PgBouncer 1.18 in transaction mode (no server-side prepared
// statements) and LISTEN and migrations on the direct URL, in each exec
// the exec mode made for such poolers (describe): catalog writes, a cart
// write, and a price change delivered by the relay to the cart all work.
// (The exec mode "exec" does not: it cannot encode the outbox's uuid[]
// argument without a described type.)
func TestServicesThroughPgBouncer(t *testing.T) {
	t.Parallel()
	for _, mode := range []pgdb.ExecMode{pgdb.ExecDescribe} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			productDB, cartDB := pgtest.NewDatabase(t, productSchema), pgtest.NewDatabase(t, cartSchema)
			urls := pooled(t, productDB, cartDB)
			iss := shoptest.Issuer(t)
			productAddr, cartAddr := shoptest.FreeAddr(t), shoptest.FreeAddr(t)
			common := map[string]string{"OIDC_ISSUER_URL": iss.URL(), "DRAIN_DELAY": "0s", "ADMIN_ADDR": "127.0.0.1:0", "DATABASE_EXEC_MODE": string(mode)}
			productEnv := map[string]string{
				"ADDR": productAddr, "DATABASE_URL": urls[0], "DATABASE_DIRECT_URL": productDB,
				"SUBSCRIBERS":     "cartsvc=http://" + cartAddr,
				"RELAY_CLIENT_ID": devissuer.DemoRelayClient, "RELAY_CLIENT_SECRET": devissuer.DemoRelaySecret,
			}
			cartEnv := map[string]string{
				"ADDR": cartAddr, "DATABASE_URL": urls[1], "DATABASE_DIRECT_URL": cartDB, "PRODUCT_URL": "http://" + productAddr,
			}
			for k, v := range common {
				productEnv[k], cartEnv[k] = v, v
			}
			runMain(t, productsvc.Run, productEnv)
			runMain(t, cartsvc.Run, cartEnv)

			ctx := t.Context()
			admin := connect.WithInterceptors(shoptest.Bearer(issuertest.UserToken(t, iss, shoptest.Admin)))
			categories := productv1connect.NewCategoryServiceClient(shoptest.HTTPClient(), "http://"+productAddr, admin)
			products := productv1connect.NewProductServiceClient(shoptest.HTTPClient(), "http://"+productAddr, admin)
			carts := cartv1connect.NewCartServiceClient(shoptest.HTTPClient(), "http://"+cartAddr,
				connect.WithInterceptors(shoptest.Bearer(issuertest.UserToken(t, iss, shoptest.Alice))))
			cat, err := categories.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: "Garden"}))
			if err != nil {
				t.Fatalf("CreateCategory through PgBouncer: %v", err)
			}
			p, err := products.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
				Sku: "SPADE", Name: "Spade", CategoryId: cat.Msg.Category.Id, Price: &typev1.Money{CurrencyCode: "EUR", AmountMinor: 2450},
			}))
			if err != nil {
				t.Fatalf("CreateProduct through PgBouncer: %v", err)
			}
			if _, err := products.ListProducts(ctx, connect.NewRequest(&productv1.ListProductsRequest{Query: new("spade")})); err != nil {
				t.Fatalf("ListProducts through PgBouncer: %v", err)
			}
			id := p.Msg.Product.Id
			rid := "add-spade"
			if _, err := carts.AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: id, Quantity: 2, RequestId: &rid})); err != nil {
				t.Fatalf("AddCartItem through PgBouncer: %v", err)
			}
			if _, err := products.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{
				Product: &productv1.Product{Id: id, Price: &typev1.Money{CurrencyCode: "EUR", AmountMinor: 1999}}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
			})); err != nil {
				t.Fatalf("UpdateProduct through PgBouncer: %v", err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				resp, err := carts.GetCart(ctx, connect.NewRequest(&cartv1.GetCartRequest{}))
				if err != nil {
					t.Fatalf("GetCart through PgBouncer: %v", err)
				}
				if it := resp.Msg.Cart.Items; len(it) == 1 && it[0].UnitPrice.GetAmountMinor() == 1999 && it[0].PriceChanged && it[0].Quantity == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the price change did not reach the cart within 10 s: %v", resp.Msg.Cart.Items)
				}
				time.Sleep(20 * time.Millisecond)
			}
			var applied, versions int
			conn, err := pgx.Connect(ctx, cartDB)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.WithoutCancel(ctx))
			if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT aggregate_version) FROM inbox WHERE aggregate_id = $1 AND outcome = 'applied'", id).Scan(&applied, &versions); err != nil {
				t.Fatal(err)
			}
			if applied != 2 || versions != 2 {
				t.Errorf("inbox holds %d applied events of %d versions for the product, want 2 of 2 (created, price changed)", applied, versions)
			}
		})
	}
}

// runMain runs a service's Run with env as its environment until the end
// of the test, and waits until it is ready.
func runMain(t *testing.T, run func(context.Context, []string, func(string) string, io.Writer, io.Writer) error, env map[string]string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, t.Output()) }()
	shoptest.WaitReady(t, "http://"+env["ADDR"], 20*time.Second, done)
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after cancel: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return within 20 s of cancel")
		}
	})
}
