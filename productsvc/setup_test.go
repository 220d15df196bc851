package productsvc_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/server"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// productSchema is productsvc's database: its own role, its own migrations.
var productSchema = pgtest.ProductSchema

// testBundle is a running productsvc on loopback with its own database, a
// real issuer, and tokens for the standard identities.
type testBundle struct {
	url     string
	pool    *pgxpool.Pool
	iss     *devissuer.Issuer
	events  *eventRecorder
	tokens  map[string]string // by identity: admin, alice, service, none
	clock   *stepClock
	catalog *productsvc.Store
}

func setup(t testing.TB) *testBundle {
	t.Helper()
	pool, _ := pgtest.NewPool(t, productSchema)
	iss := shoptest.Issuer(t)
	b := &testBundle{
		pool:   pool,
		iss:    iss,
		events: &eventRecorder{},
		clock:  &stepClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		tokens: map[string]string{
			"none":    "",
			"admin":   issuertest.UserToken(t, iss, shoptest.Admin),
			"alice":   issuertest.UserToken(t, iss, shoptest.Alice),
			"service": issuertest.ServiceToken(t, iss, shoptest.EventsClient),
		},
	}
	cfg := shoptest.ServerConfig(t, pool.Ping)
	srv := server.New(cfg)
	b.catalog = productsvc.NewStore(pool, b.events, "EUR", b.clock.Now, nil)
	productsvc.Mount(srv, server.HandlerOptions(cfg), shoptest.Verifier(t, iss), b.catalog)
	b.url = shoptest.Serve(t, srv)
	return b
}

func (b *testBundle) categories(token string, p shoptest.Protocol) productv1connect.CategoryServiceClient {
	return productv1connect.NewCategoryServiceClient(p.Client, b.url, p.ClientOptions(token)...)
}

func (b *testBundle) products(token string, p shoptest.Protocol) productv1connect.ProductServiceClient {
	return productv1connect.NewProductServiceClient(p.Client, b.url, p.ClientOptions(token)...)
}

// admin clients over Connect JSON.
func (b *testBundle) adminCategories() productv1connect.CategoryServiceClient {
	return b.categories(b.tokens["admin"], shoptest.ConnectJSON())
}

func (b *testBundle) adminProducts() productv1connect.ProductServiceClient {
	return b.products(b.tokens["admin"], shoptest.ConnectJSON())
}

func (b *testBundle) createCategory(t testing.TB, name string) *productv1.Category {
	t.Helper()
	resp, err := b.adminCategories().CreateCategory(context.Background(), connect.NewRequest(&productv1.CreateCategoryRequest{Name: name}))
	if err != nil {
		t.Fatalf("CreateCategory(%q): %v", name, err)
	}
	return resp.Msg.Category
}

func eur(amount int64) *typev1.Money { return &typev1.Money{CurrencyCode: "EUR", AmountMinor: amount} }

func (b *testBundle) createProduct(t testing.TB, categoryID, sku, name string, price int64) *productv1.Product {
	t.Helper()
	resp, err := b.adminProducts().CreateProduct(context.Background(), connect.NewRequest(&productv1.CreateProductRequest{
		Sku: sku, Name: name, CategoryId: categoryID, Price: eur(price),
	}))
	if err != nil {
		t.Fatalf("CreateProduct(%q): %v", sku, err)
	}
	return resp.Msg.Product
}

func (b *testBundle) countRows(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// stepClock advances one millisecond per reading, so creation order is
// strict and exact.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// eventRecorder is the Publisher seam under test: it records every call,
// including those in transactions that later roll back.
type eventRecorder struct {
	mu              sync.Mutex
	productsChanged []productdb.Product
	deleted         []uuid.UUID
	categories      atomic.Int64
}

func (r *eventRecorder) CategoryChanged(ctx context.Context, tx pgx.Tx, c productdb.Category) error {
	r.categories.Add(1)
	return nil
}

func (r *eventRecorder) ProductsChanged(ctx context.Context, tx pgx.Tx, products []productdb.Product) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.productsChanged = append(r.productsChanged, products...)
	return nil
}

func (r *eventRecorder) ProductDeleted(ctx context.Context, tx pgx.Tx, id uuid.UUID, version int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deleted = append(r.deleted, id)
	return nil
}

func (r *eventRecorder) changedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.productsChanged)
}

// adminContext is a request context carrying a verified admin identity, for
// calling handlers directly.
func adminContext() context.Context {
	return auth.WithIdentity(context.Background(), &auth.Identity{Subject: "admin", Roles: []string{auth.RoleAdmin}})
}
