package eventstest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/decoupledshop/shop/cartsvc"
	"github.com/decoupledshop/shop/cartsvc/productclient"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/server"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/internal/telemetry"
)

// cart is one cartsvc replica.
type cart struct {
	url     string
	pool    *pgxpool.Pool
	dbURL   string
	svc     *cartsvc.Service
	catalog *productclient.Client
	// registry holds the replica's metrics.
	registry *prometheus.Registry
}

// newCart starts a cartsvc replica, wired as Run wires it (listening for
// product versions over dbURL), on the database at dbURL, or on a fresh
// database when dbURL is "".
func (s *shop) newCart(t *testing.T, dbURL string, opts cartsvc.Options) *cart {
	t.Helper()
	c := &cart{dbURL: dbURL}
	if dbURL == "" {
		c.dbURL = pgtest.NewDatabase(t, pgtest.CartSchema)
	}
	var err error
	if c.pool, err = pgxpool.New(context.Background(), c.dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.pool.Close)
	if c.catalog, err = productclient.New(productclient.Config{BaseURL: s.productURL, CallTimeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.catalog.Close)
	c.svc = cartsvc.NewService(c.pool, c.catalog, opts)
	cfg := shoptest.ServerConfig(t, c.pool.Ping)
	srv := server.New(cfg)
	cartsvc.Mount(srv, server.HandlerOptions(cfg), s.verifier, c.svc)
	c.registry = srv.Registry()
	c.url = shoptest.Serve(t, srv)
	background(t, func(ctx context.Context) { c.svc.ListenForVersions(ctx, c.dbURL) })
	return c
}

func (c *cart) carts(token string) cartv1connect.CartServiceClient {
	return cartv1connect.NewCartServiceClient(shoptest.HTTPClient(), c.url, connect.WithInterceptors(shoptest.Bearer(token)))
}

func (c *cart) add(t *testing.T, token, productID string, quantity int32) {
	t.Helper()
	if _, err := c.carts(token).AddCartItem(context.Background(), connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: productID, Quantity: quantity})); err != nil {
		t.Fatalf("AddCartItem(%s): %v", productID, err)
	}
}

func (c *cart) wish(t *testing.T, token, productID string) {
	t.Helper()
	w := cartv1connect.NewWishlistServiceClient(shoptest.HTTPClient(), c.url, connect.WithInterceptors(shoptest.Bearer(token)))
	if _, err := w.AddWishlistItem(context.Background(), connect.NewRequest(&cartv1.AddWishlistItemRequest{ProductId: productID})); err != nil {
		t.Fatalf("AddWishlistItem(%s): %v", productID, err)
	}
}

func (c *cart) getCart(t *testing.T, token string) *cartv1.Cart {
	t.Helper()
	resp, err := c.carts(token).GetCart(context.Background(), connect.NewRequest(&cartv1.GetCartRequest{}))
	if err != nil {
		t.Fatalf("GetCart: %v", err)
	}
	return resp.Msg.Cart
}

// deliver sends events to the replica as the relay's client would.
func (c *cart) deliver(t *testing.T, token string, events []*eventsv1.Event) []*eventsv1.DeliveryResult {
	t.Helper()
	client := eventsv1connect.NewEventSinkServiceClient(shoptest.HTTPClient(), c.url, connect.WithInterceptors(shoptest.Bearer(token)))
	resp, err := client.DeliverEvents(context.Background(), connect.NewRequest(&eventsv1.DeliverEventsRequest{Events: events}))
	if err != nil {
		t.Fatalf("DeliverEvents: %v", err)
	}
	return resp.Msg.Results
}

// state renders what the cart database holds of products, timestamps
// left out, one sorted line per row: cart lines, wishlist items and
// version marks. Two databases that received the same events hold the
// same state.
func (c *cart) state(t *testing.T) string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT 'line', user_id, product_id::text, quantity::text, name, unit_price_minor::text,
		        added_unit_price_minor::text, currency_code, product_version::text, available::text FROM cart_items`,
		`SELECT 'wish', user_id, product_id::text, name, price_minor::text, currency_code,
		        product_version::text, available::text FROM wishlist_items`,
		`SELECT 'mark', product_id::text, version::text, deleted::text FROM product_versions`,
	} {
		rows, err := c.pool.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.TrimSuffix(fmt.Sprintln(vals...), "\n"))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// metric returns a sample's value from the replica's metrics (what its
// admin listener's /metrics serves; "" if absent).
func (c *cart) metric(t *testing.T, sample string) string {
	t.Helper()
	return telemetry.Sample(c.registry, sample)
}

func (c *cart) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := c.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// storedLine is what a cart line stores of its product.
type storedLine struct {
	price, added, version int64
	available             bool
}

// line returns the user's (by name) stored cart line of productID.
func (c *cart) line(t *testing.T, user, productID string) storedLine {
	t.Helper()
	var l storedLine
	if err := c.pool.QueryRow(context.Background(), `SELECT unit_price_minor, added_unit_price_minor, product_version, available
		FROM cart_items WHERE user_id = $1 AND product_id = $2`, devissuer.Subject(user), productID).Scan(&l.price, &l.added, &l.version, &l.available); err != nil {
		t.Fatal(err)
	}
	return l
}
