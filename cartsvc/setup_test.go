package cartsvc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/decoupledshop/shop/cartsvc"
	"github.com/decoupledshop/shop/cartsvc/productclient"
	"github.com/decoupledshop/shop/cartsvc/productclient/producttest"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/server"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/internal/telemetry"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// start is the time every bundle's cart clock starts at.
var start = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

// testBundle is a real cartsvc on loopback with its own database, a real
// issuer and tokens, whose catalog client calls a fake productsvc
// (products): tests seed and change the catalog there, count the calls and
// break them.
type testBundle struct {
	cartURL   string
	cartPool  *pgxpool.Pool
	registry  *prometheus.Registry // the first cart server's metrics
	telemetry *telemetry.Telemetry
	cartDBURL string
	ccfg      server.Config
	verifier  *auth.Verifier
	catalog   *productclient.Client
	svc       *cartsvc.Service
	clock     *clock
	products  *producttest.Service
	iss       *devissuer.Issuer
	tokens    map[string]string // by identity: alice, bob, admin, service, none
}

// config adjusts a bundle.
type config struct {
	catalog  productclient.Config
	service  cartsvc.Options
	shoppers int // extra users shopper00, shopper01, ...
}

// option changes the default config of setup.
type option func(*config)

// withCatalog adjusts the catalog client's configuration.
func withCatalog(f func(*productclient.Config)) option {
	return func(c *config) { f(&c.catalog) }
}

// withService adjusts the cart service's options (Currency and Now are
// set before f runs).
func withService(f func(*cartsvc.Options)) option {
	return func(c *config) { f(&c.service) }
}

// withWritesInFlight lets one user run n writes at once, so that tests of
// concurrent writes reach the database's cart lock rather than the
// per-user limit.
func withWritesInFlight(n int) option {
	return withService(func(o *cartsvc.Options) { o.Users.WritesInFlight = n })
}

// withShoppers adds n users named shopperNN to the issuer.
func withShoppers(n int) option { return func(c *config) { c.shoppers = n } }

func shopper(i int) string { return fmt.Sprintf("shopper%02d", i) }

// setup starts the bundle. By default the catalog client waits up to 5 s
// per call and retries twice without waiting (no sleeps for backoff), so
// only the tests that break productsvc on purpose see failures, and users
// have no rate limit.
func setup(t testing.TB, opts ...option) *testBundle {
	t.Helper()
	cfg := config{catalog: productclient.Config{
		CallTimeout: 5 * time.Second,
		Backoff:     func() backoff.BackOff { return &backoff.ZeroBackOff{} },
	}}
	// Tests and benchmarks make requests as fast as they can: no user
	// rate limit unless a test sets one (fairness_test.go).
	cfg.service.Users.Rate = 1e9
	// The cart cache is on, as in Run: every test reads carts through it
	// once the versions listener has caught up.
	cfg.service.CartCache = cartsvc.CartCacheConfig{MB: 4, TTL: time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	issCfg := shoptest.IssuerConfig()
	for i := range cfg.shoppers {
		issCfg.Users[shopper(i)] = devissuer.User{Password: "pw-" + shopper(i)}
	}
	issCfg.Clients[otherEventsClient] = devissuer.Client{Secret: "other-secret", Scopes: []string{auth.DefaultServiceScope}}
	issCfg.Clients[unscopedClient] = devissuer.Client{Secret: "unscoped-secret", Scopes: []string{"catalog:read"}}
	iss := issuertest.New(t, issCfg)
	verifier := shoptest.Verifier(t, iss)
	b := &testBundle{
		iss:      iss,
		verifier: verifier,
		clock:    &clock{t: start},
		tokens: map[string]string{
			"none":    "",
			"alice":   issuertest.UserToken(t, iss, shoptest.Alice),
			"bob":     issuertest.UserToken(t, iss, shoptest.Bob),
			"admin":   issuertest.UserToken(t, iss, shoptest.Admin),
			"service": issuertest.ServiceToken(t, iss, shoptest.EventsClient),
			"other":   issuertest.ServiceToken(t, iss, otherEventsClient),
			"noscope": issuertest.ServiceToken(t, iss, unscopedClient),
		},
	}
	for i := range cfg.shoppers {
		b.tokens[shopper(i)] = issuertest.UserToken(t, iss, shopper(i))
	}

	b.products = producttest.Start(t)

	// cartsvc.
	b.cartPool, b.cartDBURL = pgtest.NewPool(t, pgtest.CartSchema)
	cfg.catalog.BaseURL = b.products.URL()
	cfg.catalog.Now = b.clock.Now
	// Telemetry as Run wires it (tracing off, logs discarded).
	b.telemetry = telemetry.ForTest("cartsvc", nil, nil)
	cfg.catalog.ClientOptions = b.telemetry.ClientOptions()
	var err error
	if b.catalog, err = productclient.New(cfg.catalog); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.catalog.Close)
	cfg.service.Currency, cfg.service.Now = "EUR", b.clock.Now
	b.svc = cartsvc.NewService(b.cartPool, b.catalog, cfg.service)
	t.Cleanup(b.svc.Close)
	listen(t, b.svc, b.cartDBURL)
	b.ccfg = shoptest.ServerConfig(t, b.cartPool.Ping)
	b.cartURL = b.serveCart(t, b.svc)
	return b
}

// listen runs svc's versions listener on dbURL until the test ends.
func listen(t testing.TB, svc *cartsvc.Service, dbURL string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.ListenForVersions(ctx, dbURL)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// Service clients of the issuer besides the relay's (shoptest.EventsClient):
// another one with the events:write scope, and one without it.
const (
	otherEventsClient = "other-relay"
	unscopedClient    = "reporting"
)

// serveCart serves svc as cartsvc on a fresh loopback port, with the
// bundle's verifier, and returns its base URL.
func (b *testBundle) serveCart(t testing.TB, svc *cartsvc.Service) string {
	t.Helper()
	srv := server.New(b.ccfg)
	cartsvc.Mount(srv, append(b.telemetry.HandlerOptions(), server.HandlerOptions(b.ccfg)...), b.verifier, svc)
	if b.registry == nil {
		b.registry = srv.Registry()
	}
	return shoptest.Serve(t, srv)
}

// Clients of cartsvc for an identity, over Connect with binary protobuf
// (or the protocol given).
func (b *testBundle) carts(who string, p ...shoptest.Protocol) cartv1connect.CartServiceClient {
	pr := protocol(p)
	return cartv1connect.NewCartServiceClient(pr.Client, b.cartURL, pr.ClientOptions(b.tokens[who])...)
}

func (b *testBundle) wishlists(who string, p ...shoptest.Protocol) cartv1connect.WishlistServiceClient {
	pr := protocol(p)
	return cartv1connect.NewWishlistServiceClient(pr.Client, b.cartURL, pr.ClientOptions(b.tokens[who])...)
}

func (b *testBundle) promos(who string, p ...shoptest.Protocol) cartv1connect.PromoCodeServiceClient {
	pr := protocol(p)
	return cartv1connect.NewPromoCodeServiceClient(pr.Client, b.cartURL, pr.ClientOptions(b.tokens[who])...)
}

func protocol(p []shoptest.Protocol) shoptest.Protocol {
	if len(p) > 0 {
		return p[0]
	}
	return shoptest.Protocols()[1] // connect+proto
}

func eur(amount int64) *typev1.Money { return &typev1.Money{CurrencyCode: "EUR", AmountMinor: amount} }

// createProduct adds a product to the fake productsvc, at version 1.
func (b *testBundle) createProduct(t testing.TB, name string, price int64) *productv1.Product {
	return b.products.Create(name, price)
}

// setPrice changes a product's price in productsvc (a new version) and
// returns it.
func (b *testBundle) setPrice(t testing.TB, p *productv1.Product, price int64) *productv1.Product {
	return b.products.SetPrice(p.Id, price)
}

func (b *testBundle) deleteProduct(t testing.TB, p *productv1.Product) { b.products.Delete(p.Id) }

// add adds quantity of p to who's cart, failing the test on error, and
// waits until the catalog cache holds what the add fetched.
func (b *testBundle) add(t testing.TB, who string, p *productv1.Product, quantity int32) *cartv1.Cart {
	t.Helper()
	resp, err := b.carts(who).AddCartItem(context.Background(), connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: p.Id, Quantity: quantity}))
	if err != nil {
		t.Fatalf("AddCartItem(%s, %d) as %s: %v", p.Name, quantity, who, err)
	}
	b.catalog.Wait()
	return resp.Msg.Cart
}

// cart returns who's cart, failing the test on error.
func (b *testBundle) cart(t testing.TB, who string) *cartv1.Cart {
	t.Helper()
	resp, err := b.carts(who).GetCart(context.Background(), connect.NewRequest(&cartv1.GetCartRequest{}))
	if err != nil {
		t.Fatalf("GetCart as %s: %v", who, err)
	}
	b.catalog.Wait()
	return resp.Msg.Cart
}

// wishlist returns who's wishlist, failing the test on error.
func (b *testBundle) wishlist(t testing.TB, who string) *cartv1.Wishlist {
	t.Helper()
	resp, err := b.wishlists(who).GetWishlist(context.Background(), connect.NewRequest(&cartv1.GetWishlistRequest{}))
	if err != nil {
		t.Fatalf("GetWishlist as %s: %v", who, err)
	}
	return resp.Msg.Wishlist
}

// createPromo creates a promo code valid for the next 30 days of the cart
// clock.
func (b *testBundle) createPromo(t testing.TB, req *cartv1.CreatePromoCodeRequest) *cartv1.PromoCode {
	t.Helper()
	if req.EndTime == nil {
		req.EndTime = timestamppb.New(b.clock.Now().Add(30 * 24 * time.Hour))
	}
	resp, err := b.promos("admin").CreatePromoCode(context.Background(), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("CreatePromoCode(%s): %v", req.Code, err)
	}
	return resp.Msg.PromoCode
}

// expireCache moves the cart clock past the catalog cache's TTL, so the
// next lookups ask productsvc again.
func (b *testBundle) expireCache() { b.clock.Advance(productclient.DefaultTTL + time.Second) }

// exec runs SQL on the cart database as the cart's role, as the events
// issue's consumer would.
func (b *testBundle) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := b.cartPool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func (b *testBundle) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := b.cartPool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("query %q: %v", sql, err)
	}
	return n
}

// clock is the cart's settable clock. It advances a millisecond per
// reading, so creation order is strict.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// eventually polls cond every few milliseconds until it holds, failing the
// test after 10 s. It waits for other goroutines to reach a state, never
// for time to pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
