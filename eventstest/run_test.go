package eventstest_test

import (
	"context"
	"io"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/decoupledshop/shop/cartsvc"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
)

// runMain runs a service's Run with env as its environment until stop or
// the end of the test, and waits until it is ready.
func runMain(t *testing.T, run func(context.Context, []string, func(string) string, io.Writer, io.Writer) error, env map[string]string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, t.Output()) }()
	shoptest.WaitReady(t, "http://"+env["ADDR"], 20*time.Second, done)
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after cancel: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return within 20s of cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestRunDeliversCatalogChangesToCarts runs the real mains, wired as
// deployed (productsvc with --subscribers cartsvc=<url> and the relay's
// client credentials): a price change reaches the cart line (price_changed,
// also in the stored snapshot), a delete makes the line unavailable, a
// category rename reaches the lines' versions; with cartsvc stopped, 100
// changes all arrive once it is back, none twice.
func TestRunDeliversCatalogChangesToCarts(t *testing.T) {
	t.Parallel()
	iss := shoptest.Issuer(t)
	productAddr, cartAddr := shoptest.FreeAddr(t), shoptest.FreeAddr(t)
	cartDB, productDB := pgtest.NewDatabase(t, pgtest.CartSchema), pgtest.NewDatabase(t, pgtest.ProductSchema)
	productEnv := map[string]string{
		"ADDR": productAddr, "DATABASE_URL": productDB, "OIDC_ISSUER_URL": iss.URL(), "DRAIN_DELAY": "-1s", "ADMIN_ADDR": "127.0.0.1:0",
		"SUBSCRIBERS":     "cartsvc=http://" + cartAddr,
		"RELAY_CLIENT_ID": devissuer.DemoRelayClient, "RELAY_CLIENT_SECRET": devissuer.DemoRelaySecret,
	}
	cartEnv := map[string]string{
		"ADDR": cartAddr, "DATABASE_URL": cartDB, "OIDC_ISSUER_URL": iss.URL(), "DRAIN_DELAY": "-1s", "ADMIN_ADDR": "127.0.0.1:0",
		"PRODUCT_URL": "http://" + productAddr,
	}
	runMain(t, productsvc.Run, productEnv)
	stopCart := runMain(t, cartsvc.Run, cartEnv)
	ctx := context.Background()
	cartPool, err := pgxpool.New(ctx, cartDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cartPool.Close)
	productPool, err := pgxpool.New(ctx, productDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(productPool.Close)

	admin := connect.WithInterceptors(shoptest.Bearer(issuertest.UserToken(t, iss, shoptest.Admin)))
	categories := productv1connect.NewCategoryServiceClient(shoptest.HTTPClient(), "http://"+productAddr, admin)
	products := productv1connect.NewProductServiceClient(shoptest.HTTPClient(), "http://"+productAddr, admin)
	carts := cartv1connect.NewCartServiceClient(shoptest.HTTPClient(), "http://"+cartAddr,
		connect.WithInterceptors(shoptest.Bearer(issuertest.UserToken(t, iss, shoptest.Alice))))
	alice := devissuer.Subject(shoptest.Alice)

	cat, err := categories.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: "Garden"}))
	if err != nil {
		t.Fatal(err)
	}
	create := func(sku string, price int64) *productv1.Product {
		resp, err := products.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
			Sku: sku, Name: sku, CategoryId: cat.Msg.Category.Id, Price: eur(price),
		}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg.Product
	}
	spade, rake := create("SPADE", 2450), create("RAKE", 1500)
	for _, p := range []*productv1.Product{spade, rake} {
		if _, err := carts.AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: p.Id, Quantity: 2})); err != nil {
			t.Fatal(err)
		}
	}
	getCart := func() map[string]*cartv1.CartItem {
		resp, err := carts.GetCart(ctx, connect.NewRequest(&cartv1.GetCartRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		items := map[string]*cartv1.CartItem{}
		for _, it := range resp.Msg.Cart.Items {
			items[it.ProductId] = it
		}
		return items
	}
	getCart() // the products are cached now, for the cache's TTL (30 s)
	type line struct {
		price, added, version int64
		available             bool
	}
	stored := func(productID string) line {
		var l line
		if err := cartPool.QueryRow(ctx, `SELECT unit_price_minor, added_unit_price_minor, product_version, available
			FROM cart_items WHERE user_id = $1 AND product_id = $2`, alice, productID).Scan(&l.price, &l.added, &l.version, &l.available); err != nil {
			t.Fatal(err)
		}
		return l
	}

	// A price change: within the cache's TTL, the cart shows it.
	began := time.Now()
	if _, err := products.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{
		Product: &productv1.Product{Id: spade.Id, Price: eur(1999)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
	})); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the cart shows the new price", func() bool {
		it := getCart()[spade.Id]
		return it.UnitPrice.GetAmountMinor() == 1999 && it.PriceChanged
	})
	t.Logf("price change → cart shows it (price_changed): %s", time.Since(began).Round(time.Millisecond))
	if got := stored(spade.Id); got != (line{price: 1999, added: 2450, version: 2, available: true}) {
		t.Errorf("stored line = %+v; want the event's snapshot: 19.99, added at 24.50, version 2", got)
	}

	// A delete.
	if _, err := products.DeleteProduct(ctx, connect.NewRequest(&productv1.DeleteProductRequest{Id: rake.Id})); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the deleted product's line is unavailable", func() bool { return !getCart()[rake.Id].Available })
	if got := stored(rake.Id); got.available || got.price != 1500 {
		t.Errorf("stored line of the deleted product = %+v; want kept with its snapshot, unavailable", got)
	}

	// A category rename bumps its products' versions.
	if _, err := categories.UpdateCategory(ctx, connect.NewRequest(&productv1.UpdateCategoryRequest{
		Category: &productv1.Category{Id: cat.Msg.Category.Id, Name: "Yard"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
	})); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the rename reached the line", func() bool { return stored(spade.Id).version == 3 })

	// cartsvc stopped: 100 changes wait in the outbox and all arrive, once
	// each, when it is back.
	stopCart()
	var last int64
	for i := range 100 {
		resp, err := products.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{
			Product: &productv1.Product{Id: spade.Id, Price: eur(int64(2000 + i))}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
		}))
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Msg.Product.Version
	}
	runMain(t, cartsvc.Run, cartEnv)
	began = time.Now()
	eventually(t, 30*time.Second, "the outbox drained", func() bool {
		var n int
		if err := productPool.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	t.Logf("cartsvc back → the 100 changes made while it was down all delivered: %s", time.Since(began).Round(time.Millisecond))
	var received, applied int
	if err := cartPool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE outcome = 'applied') FROM inbox
		WHERE aggregate_id = $1 AND aggregate_version > 3`, spade.Id).Scan(&received, &applied); err != nil {
		t.Fatal(err)
	}
	if received != 100 {
		t.Errorf("received %d of the 100 changes made while cartsvc was down", received)
	}
	if got := stored(spade.Id); got.price != 2099 || got.version != last {
		t.Errorf("stored line = %+v; want the last change: 20.99 at version %d", got, last)
	}
	t.Logf("of the 100: %d applied, %d stale (an older one arriving after a newer one)", applied, received-applied)
}
