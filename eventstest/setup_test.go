package eventstest_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/decoupledshop/shop/cartsvc"
	"github.com/decoupledshop/shop/cartsvc/productclient"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/clientcreds"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/server"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/internal/telemetry"
	"github.com/decoupledshop/shop/productsvc"
	"github.com/decoupledshop/shop/productsvc/relay"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// long skips t unless SHOP_LONG=1 asks for the long tests.
func long(t *testing.T) {
	t.Helper()
	if os.Getenv("SHOP_LONG") != "1" {
		t.Skip("a long test: set SHOP_LONG=1 to run it")
	}
}

// shop is a real productsvc whose catalog writes the outbox for the given
// subscribers, with a real issuer; cartsvc replicas and relays are added
// by the tests.
type shop struct {
	iss         *devissuer.Issuer
	verifier    *auth.Verifier
	admin       string // an admin's access token
	productURL  string
	productPool *pgxpool.Pool
	productDB   string
	catalog     *productsvc.Store
	products    productv1connect.ProductServiceClient
	categories  productv1connect.CategoryServiceClient
}

func newShop(t *testing.T, subscribers ...string) *shop {
	t.Helper()
	iss := shoptest.Issuer(t)
	s := &shop{iss: iss, verifier: shoptest.Verifier(t, iss), admin: issuertest.UserToken(t, iss, shoptest.Admin)}
	s.productPool, s.productDB = pgtest.NewPool(t, pgtest.ProductSchema)
	s.catalog = productsvc.NewStore(s.productPool, rollbackPublisher{productsvc.NewOutbox(subscribers, nil, nil)}, "EUR", nil, nil)
	cfg := shoptest.ServerConfig(t, s.productPool.Ping)
	srv := server.New(cfg)
	productsvc.Mount(srv, server.HandlerOptions(cfg), s.verifier, s.catalog)
	s.productURL = shoptest.Serve(t, srv)
	s.products = productv1connect.NewProductServiceClient(shoptest.HTTPClient(), s.productURL, connect.WithInterceptors(shoptest.Bearer(s.admin)))
	s.categories = productv1connect.NewCategoryServiceClient(shoptest.HTTPClient(), s.productURL, connect.WithInterceptors(shoptest.Bearer(s.admin)))
	return s
}

// rollBack marks a context: the change's transaction writes its events,
// then fails, so the change and its events roll back.
type rollBack struct{}

// rollbackPublisher is productsvc's outbox, plus a failing statement after
// a product change's events when the context carries rollBack.
type rollbackPublisher struct{ *productsvc.Outbox }

func (p rollbackPublisher) ProductsChanged(ctx context.Context, tx pgx.Tx, products []productdb.Product) error {
	if err := p.Outbox.ProductsChanged(ctx, tx, products); err != nil {
		return err
	}
	if ctx.Value(rollBack{}) != nil {
		_, err := tx.Exec(ctx, "SELECT 1 / 0") // aborts the transaction
		return err
	}
	return nil
}

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

// background runs f until the test ends.
func background(t *testing.T, f func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// relayTokens is the relay's client-credentials source.
func (s *shop) relayTokens() *clientcreds.Source {
	return clientcreds.New(clientcreds.Config{
		TokenURL: s.iss.URL() + devissuer.TokenPath, ClientID: devissuer.DemoRelayClient,
		ClientSecret: devissuer.DemoRelaySecret, Scopes: []string{auth.DefaultServiceScope},
	})
}

// startRelay runs productsvc's relay with cfg (tokens and the LISTEN URL
// filled in) until the test ends.
func (s *shop) startRelay(t *testing.T, cfg relay.Config) {
	t.Helper()
	cfg.Tokens = s.relayTokens()
	cfg.ListenURL = s.productDB
	r, err := relay.New(s.productPool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	background(t, func(ctx context.Context) { _ = r.Run(ctx) })
}

// waitDrained waits until productsvc's outbox is empty.
func (s *shop) waitDrained(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		var n int
		if err := s.productPool.QueryRow(context.Background(), "SELECT count(*) FROM outbox").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return time.Since(began)
		}
		if time.Since(began) > timeout {
			t.Fatalf("%d events still in the outbox after %s", n, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *shop) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := s.productPool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func eur(amount int64) *typev1.Money { return &typev1.Money{CurrencyCode: "EUR", AmountMinor: amount} }

func (s *shop) createCategory(t *testing.T, name string) *productv1.Category {
	t.Helper()
	resp, err := s.categories.CreateCategory(context.Background(), connect.NewRequest(&productv1.CreateCategoryRequest{Name: name}))
	if err != nil {
		t.Fatalf("CreateCategory: %v", err)
	}
	return resp.Msg.Category
}

func (s *shop) createProduct(t *testing.T, categoryID, sku, name string, price int64) *productv1.Product {
	t.Helper()
	resp, err := s.products.CreateProduct(context.Background(), connect.NewRequest(&productv1.CreateProductRequest{
		Sku: sku, Name: name, CategoryId: categoryID, Price: eur(price),
	}))
	if err != nil {
		t.Fatalf("CreateProduct(%s): %v", sku, err)
	}
	return resp.Msg.Product
}

func (s *shop) setPrice(t *testing.T, id string, price int64) *productv1.Product {
	t.Helper()
	resp, err := s.products.UpdateProduct(context.Background(), connect.NewRequest(&productv1.UpdateProductRequest{
		Product: &productv1.Product{Id: id, Price: eur(price)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
	}))
	if err != nil {
		t.Fatalf("UpdateProduct(%s): %v", id, err)
	}
	return resp.Msg.Product
}

func (s *shop) rename(t *testing.T, id, name string) {
	t.Helper()
	_, err := s.products.UpdateProduct(context.Background(), connect.NewRequest(&productv1.UpdateProductRequest{
		Product: &productv1.Product{Id: id, Name: name}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
	}))
	if err != nil {
		t.Fatalf("UpdateProduct(%s): %v", id, err)
	}
}

func (s *shop) deleteProduct(t *testing.T, id string) {
	t.Helper()
	if _, err := s.products.DeleteProduct(context.Background(), connect.NewRequest(&productv1.DeleteProductRequest{Id: id})); err != nil {
		t.Fatalf("DeleteProduct(%s): %v", id, err)
	}
}

func (s *shop) renameCategory(t *testing.T, id, name string) {
	t.Helper()
	_, err := s.categories.UpdateCategory(context.Background(), connect.NewRequest(&productv1.UpdateCategoryRequest{
		Category: &productv1.Category{Id: id, Name: name}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
	}))
	if err != nil {
		t.Fatalf("UpdateCategory(%s): %v", id, err)
	}
}

// userToken is a user's access token.
func (s *shop) userToken(t *testing.T, user string) string {
	t.Helper()
	return issuertest.UserToken(t, s.iss, user)
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

func (c *cart) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := c.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
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

// outboxEvents returns the subscriber's queued events in the order they
// happened.
func (s *shop) outboxEvents(t *testing.T, subscriber string) []*eventsv1.Event {
	t.Helper()
	rows, err := s.productPool.Query(context.Background(),
		`SELECT event FROM outbox WHERE subscriber = $1 ORDER BY occurred_at, aggregate_version, event_id`, subscriber)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	events := make([]*eventsv1.Event, len(raw))
	for i, r := range raw {
		events[i] = new(eventsv1.Event)
		if err := proto.Unmarshal(r, events[i]); err != nil {
			t.Fatal(err)
		}
	}
	return events
}

// productChangedEvent is a ProductChanged event made by hand, as
// productsvc's outbox would make it.
func productChangedEvent(id uuid.UUID, version int64, name string, price int64) *eventsv1.Event {
	return &eventsv1.Event{
		Id: uuid.NewString(), Type: "shop.events.v1.ProductChanged", AggregateId: id.String(), AggregateVersion: version,
		OccurredAt: timestamppb.Now(),
		Payload: &eventsv1.Event_ProductChanged{ProductChanged: &eventsv1.ProductChanged{
			Id: id.String(), Sku: "SKU-1", Name: name, CategoryId: uuid.NewString(), CategoryName: "Things",
			Price: eur(price), Version: version, UpdateTime: timestamppb.Now(),
		}},
	}
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
