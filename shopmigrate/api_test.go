package shopmigrate

import (
	"context"
	"fmt"
	"io"
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
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
)

// runService runs a service's Run with env until the test ends, once it is
// ready.
func runService(t *testing.T, run func(context.Context, []string, func(string) string, io.Writer, io.Writer) error, env map[string]string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, t.Output()) }()
	shoptest.WaitReady(t, "http://"+env["ADDR"], 20*time.Second, done)
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("service did not stop within 20s")
		}
	})
}

// TestMigratedDataThroughTheServices splits the small dataset, mapping
// to the dev issuer's alice a legacy user whose cart holds a line of a
// deleted product, starts the real productsvc
// (with its relay delivering to cartsvc) and cartsvc on the migrated
// databases, and reads the data back through their APIs: ListProducts
// returns every live legacy product as it was (SKU conflicts resolved),
// GetCart with alice's token returns that user's lines. Then an admin's price
// change reaches the migrated cart line through an event, which the
// initialised version marks let through.
func TestMigratedDataThroughTheServices(t *testing.T) {
	t.Parallel()
	b := setup(t, SmallSize)
	alice := devissuer.Subject(shoptest.Alice)
	aliceLegacyID := count(t, b.legacy, `SELECT min(c.user_id) FROM carts c JOIN cart_items i ON i.cart_id = c.id
		JOIN products p ON p.id = i.product_id JOIN users u ON u.id = c.user_id WHERE p.deleted_at IS NOT NULL AND u.deleted_at IS NULL`)
	b.cfg.Users.ByID = map[int64]string{aliceLegacyID: alice}
	split(t, b.cfg)
	shop := startMigratedShop(t, b)

	// Every live legacy product, as ListProducts shows it.
	want, got := legacyProducts(t, b), shop.listProducts(t)
	if len(got) != len(want) {
		t.Errorf("ListProducts returned %d products; want the %d live legacy ones", len(got), len(want))
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("product %s: ListProducts %+v; want %+v", id, got[id], w)
		}
	}

	// Alice's cart is the legacy user's.
	wantLines, legacyIDs := legacyLines(t, b, aliceLegacyID)
	items := shop.getCart(t)
	if len(items) != len(wantLines) || len(items) == 0 {
		t.Fatalf("alice's cart has %d lines; want legacy user %d's %d", len(items), aliceLegacyID, len(wantLines))
	}
	available := checkLines(t, items, wantLines)
	if len(available) < 2 {
		t.Fatal("alice's cart has no second available line")
	}
	repriced, caughtUp := available[0], available[1]

	// A legacy price change copied by a catch-up pass while the services
	// run reaches the cart through the events the pass queued in
	// productsvc's outbox: cartsvc receives the ProductChanged, and GetCart
	// shows the new price (its product cache holds the old one).
	execSQL(t, b.legacy, `UPDATE products SET price = 77.77 WHERE id = $1`, legacyIDs[caughtUp])
	cfg := b.cfg
	cfg.Subscribers = []string{"cartsvc"}
	if rep := split(t, cfg); rep.Pass != 2 || !rep.Verified {
		t.Fatalf("catch-up: pass %d, verified %t", rep.Pass, rep.Verified)
	}
	caughtDeadline := time.Now().Add(15 * time.Second)
	waitUntil(t, caughtDeadline, func() bool {
		return count(t, b.cart, `SELECT count(*) FROM inbox WHERE aggregate_id = $1 AND aggregate_version = 2 AND type = 'shop.events.v1.ProductChanged'`, caughtUp) > 0
	}, func() string {
		return fmt.Sprintf("cartsvc received no ProductChanged at version 2 for %s 15 s after the catch-up pass", caughtUp)
	})
	var shown *typev1.Money
	waitUntil(t, caughtDeadline, func() bool {
		shown = shop.getCart(t)[caughtUp].UnitPrice
		return shown.GetAmountMinor() == 7777
	}, func() string {
		return fmt.Sprintf("GetCart shows %s at %v after the catch-up's event was delivered; want 77.77", caughtUp, shown)
	})

	// A price change after the cut-over reaches the migrated line by event.
	if _, err := shop.products.UpdateProduct(t.Context(), connect.NewRequest(&productv1.UpdateProductRequest{
		Product:    &productv1.Product{Id: repriced, Price: &typev1.Money{CurrencyCode: "EUR", AmountMinor: 4242}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
	})); err != nil {
		t.Fatalf("UpdateProduct: %v", err)
	}
	var price, version int64
	waitUntil(t, time.Now().Add(15*time.Second), func() bool {
		if err := b.cart.QueryRow(t.Context(), `SELECT unit_price_minor, product_version FROM cart_items WHERE user_id = $1 AND product_id = $2`,
			alice, repriced).Scan(&price, &version); err != nil {
			t.Fatal(err)
		}
		return price == 4242 && version == 2
	}, func() string {
		return fmt.Sprintf("the stored line of %s is at %d, version %d, 15 s after the price change; want 4242 at version 2 (the event's)", repriced, price, version)
	})
	if it := shop.getCart(t)[repriced]; it.UnitPrice.GetAmountMinor() != 4242 || !it.PriceChanged {
		t.Errorf("GetCart after the change: %v, price_changed %t; want 42.42, changed", it.UnitPrice, it.PriceChanged)
	}
}

// migratedShop is productsvc (its relay delivering to cartsvc) and
// cartsvc running on a bundle's migrated databases, with an admin's
// product client and alice's cart client.
type migratedShop struct {
	products productv1connect.ProductServiceClient
	carts    cartv1connect.CartServiceClient
}

// startMigratedShop starts the services on b's target databases until
// the test ends.
func startMigratedShop(t *testing.T, b *bundle) *migratedShop {
	iss := shoptest.Issuer(t)
	productAddr, cartAddr := shoptest.FreeAddr(t), shoptest.FreeAddr(t)
	runService(t, productsvc.Run, map[string]string{
		"ADDR": productAddr, "DATABASE_URL": b.cfg.ProductURL, "OIDC_ISSUER_URL": iss.URL(), "DRAIN_DELAY": "-1s", "ADMIN_ADDR": "127.0.0.1:0",
		"SUBSCRIBERS":     "cartsvc=http://" + cartAddr,
		"RELAY_CLIENT_ID": devissuer.DemoRelayClient, "RELAY_CLIENT_SECRET": devissuer.DemoRelaySecret,
	})
	runService(t, cartsvc.Run, map[string]string{
		"ADDR": cartAddr, "DATABASE_URL": b.cfg.CartURL, "OIDC_ISSUER_URL": iss.URL(), "DRAIN_DELAY": "-1s", "ADMIN_ADDR": "127.0.0.1:0",
		"PRODUCT_URL": "http://" + productAddr,
	})
	return &migratedShop{
		products: productv1connect.NewProductServiceClient(shoptest.HTTPClient(), "http://"+productAddr,
			connect.WithInterceptors(shoptest.Bearer(issuertest.UserToken(t, iss, shoptest.Admin)))),
		carts: cartv1connect.NewCartServiceClient(shoptest.HTTPClient(), "http://"+cartAddr,
			connect.WithInterceptors(shoptest.Bearer(issuertest.UserToken(t, iss, shoptest.Alice)))),
	}
}

// listedProduct is what the test compares of a product.
type listedProduct struct {
	sku, name, category string
	price               int64
}

// legacyProducts returns the live legacy products by the UUID they
// become, as productsvc should show them: duplicate SKUs and category
// names renamed.
func legacyProducts(t *testing.T, b *bundle) map[string]listedProduct {
	want := map[string]listedProduct{}
	rows, err := b.legacy.Query(t.Context(), `SELECT p.id,
		    CASE WHEN EXISTS (SELECT 1 FROM products q WHERE q.sku = p.sku AND q.id < p.id AND q.deleted_at IS NULL)
		        THEN p.sku || '-L' || p.id ELSE p.sku END,
		    p.name,
		    CASE WHEN EXISTS (SELECT 1 FROM categories d WHERE lower(d.name) = lower(c.name) AND d.id < c.id)
		        THEN c.name || ' (legacy ' || c.id || ')' ELSE c.name END,
		    (p.price * 100)::bigint
		FROM products p JOIN categories c ON c.id = p.category_id WHERE p.deleted_at IS NULL`)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	var p listedProduct
	if _, err := pgx.ForEachRow(rows, []any{&id, &p.sku, &p.name, &p.category, &p.price}, func() error {
		want[LegacyUUID("products", id).String()] = p
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return want
}

// listProducts returns every product ListProducts pages through, by id.
func (s *migratedShop) listProducts(t *testing.T) map[string]listedProduct {
	got := map[string]listedProduct{}
	for token := ""; ; {
		resp, err := s.products.ListProducts(t.Context(), connect.NewRequest(&productv1.ListProductsRequest{PageSize: 100, PageToken: token}))
		if err != nil {
			t.Fatalf("ListProducts: %v", err)
		}
		for _, p := range resp.Msg.Products {
			got[p.Id] = listedProduct{p.Sku, p.Name, p.CategoryName, p.Price.GetAmountMinor()}
		}
		if token = resp.Msg.NextPageToken; token == "" {
			return got
		}
	}
}

// getCart returns alice's cart lines by product id.
func (s *migratedShop) getCart(t *testing.T) map[string]*cartv1.CartItem {
	resp, err := s.carts.GetCart(t.Context(), connect.NewRequest(&cartv1.GetCartRequest{}))
	if err != nil {
		t.Fatalf("GetCart: %v", err)
	}
	items := map[string]*cartv1.CartItem{}
	for _, it := range resp.Msg.Cart.Items {
		items[it.ProductId] = it
	}
	return items
}

// cartLine is what the test compares of a cart line.
type cartLine struct {
	quantity         int32
	name             string
	price, added     int64
	available, shown bool
}

// legacyLines returns the legacy user's cart lines by the UUID of their
// product, and the products' legacy ids.
func legacyLines(t *testing.T, b *bundle, legacyUserID int64) (map[string]cartLine, map[string]int64) {
	wantLines, legacyIDs := map[string]cartLine{}, map[string]int64{}
	rows, err := b.legacy.Query(t.Context(), `SELECT i.product_id, i.quantity, p.name, (p.price * 100)::bigint, (i.unit_price * 100)::bigint, p.deleted_at IS NULL
		FROM cart_items i JOIN carts c ON c.id = i.cart_id JOIN products p ON p.id = i.product_id WHERE c.user_id = $1`, legacyUserID)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	var l cartLine
	if _, err := pgx.ForEachRow(rows, []any{&id, &l.quantity, &l.name, &l.price, &l.added, &l.available}, func() error {
		wantLines[LegacyUUID("products", id).String()] = l
		legacyIDs[LegacyUUID("products", id).String()] = id
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return wantLines, legacyIDs
}

// checkLines compares GetCart's items with the legacy lines and returns
// the products of the available ones.
func checkLines(t *testing.T, items map[string]*cartv1.CartItem, wantLines map[string]cartLine) (available []string) {
	t.Helper()
	unavailable := 0
	for pid, w := range wantLines {
		it := items[pid]
		if it == nil {
			t.Errorf("line of product %s missing from GetCart", pid)
			continue
		}
		got := cartLine{it.Quantity, it.Name, it.UnitPrice.GetAmountMinor(), it.AddedUnitPrice.GetAmountMinor(), it.Available, false}
		if got != w {
			t.Errorf("line of %s: GetCart %+v; want the legacy line %+v", pid, got, w)
		}
		if w.available {
			available = append(available, pid)
		} else {
			unavailable++
		}
	}
	t.Logf("alice's migrated cart: %d lines, %d of deleted products (shown unavailable)", len(items), unavailable)
	return available
}

// waitUntil polls cond every 20 ms until it holds, failing with what()
// at deadline.
func waitUntil(t *testing.T, deadline time.Time, cond func() bool, what func() string) {
	t.Helper()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
