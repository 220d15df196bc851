package cartsvc_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decoupledshop/shop/cartsvc"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// BenchmarkGetCart measures GetCart for a cart of 20 lines over real HTTP
// (Connect, binary protobuf), with product data from the cache (the hot
// path), next to a baseline measured in the same loop: a gRPC health check
// through the same server stack, one database round trip. getcart/ping is
// the ratio; getcart-ns/op is GetCart alone; catalog-calls/op counts
// BatchGetProducts calls per GetCart (0 when served from the cache);
// statements/op the SQL statements one GetCart sends.
func BenchmarkGetCart(b *testing.B) {
	bundle := setup(b)
	for i := range 20 {
		bundle.add(b, shoptest.Alice, bundle.createProduct(b, fmt.Sprintf("Bench %02d", i), int64(100+i)), 1)
	}
	statements, url := bundle.countingCart(b)
	client := cartv1connect.NewCartServiceClient(shoptest.Protocols()[1].Client, url, shoptest.Protocols()[1].ClientOptions(bundle.tokens[shoptest.Alice])...)
	health := grpchealth.NewClient(shoptest.Protocols()[1].Client, bundle.cartURL)
	ctx := context.Background()
	req := connect.NewRequest(&cartv1.GetCartRequest{})
	if _, err := client.GetCart(ctx, req); err != nil { // warm the cache
		b.Fatal(err)
	}
	callsBefore := bundle.products.Calls()
	statements.Store(0)
	var get, ping time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		resp, err := client.GetCart(ctx, req)
		if err != nil || len(resp.Msg.Cart.Items) != 20 || resp.Msg.Cart.Stale {
			b.Fatalf("GetCart: %v", err)
		}
		t1 := time.Now()
		if _, err := health.Check(ctx, &grpchealth.CheckRequest{}); err != nil {
			b.Fatal(err)
		}
		get, ping = get+t1.Sub(t0), ping+time.Since(t1)
		n++
	}
	b.ReportMetric(float64(get.Nanoseconds())/float64(n), "getcart-ns/op")
	b.ReportMetric(float64(get)/float64(ping), "getcart/ping")
	b.ReportMetric(float64(bundle.products.Calls()-callsBefore)/float64(n), "catalog-calls/op")
	b.ReportMetric(float64(statements.Load())/float64(n), "statements/op")
}

// BenchmarkAddCartItem measures AddCartItem with a request_id (20
// products in turn, product data from the cache) over real HTTP, next to
// a baseline measured in the same loop: one raw single-row INSERT on the
// same database. add/insert is the ratio of their times (lower is
// better); statements/op counts the SQL statements (BEGIN and COMMIT
// included) one AddCartItem sends.
func BenchmarkAddCartItem(b *testing.B) {
	bundle := setup(b)
	products := make([]string, 20)
	for i := range products {
		p := bundle.createProduct(b, fmt.Sprintf("Bench %02d", i), int64(100+i))
		bundle.add(b, shoptest.Alice, p, 1)
		products[i] = p.Id
	}
	statements, url := bundle.countingCart(b)
	client := cartv1connect.NewCartServiceClient(shoptest.Protocols()[1].Client, url, shoptest.Protocols()[1].ClientOptions(bundle.tokens[shoptest.Alice])...)
	statements.Store(0)
	raw := newRawInserts(b, bundle.cartPool)
	ctx := context.Background()
	var add, insert time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		id := fmt.Sprintf("bench-%d", n)
		_, err := client.AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: products[n%len(products)], Quantity: 1, RequestId: &id}))
		if err != nil {
			b.Fatal(err)
		}
		add += time.Since(t0)
		insert += raw.runWith(b, 1, 1)
		n++
	}
	b.ReportMetric(float64(add.Nanoseconds())/float64(n), "add-ns/op")
	b.ReportMetric(float64(add)/float64(insert), "add/insert")
	b.ReportMetric(float64(statements.Load())/float64(n), "statements/op")
}

// countingCart serves a second cartsvc on the bundle's database and
// catalog whose pool counts the statements it sends, and returns the
// counter and its URL.
func (bundle *testBundle) countingCart(b testing.TB) (*atomic.Int64, string) {
	cfg, err := pgxpool.ParseConfig(bundle.cartDBURL)
	if err != nil {
		b.Fatal(err)
	}
	counter := &statementCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return &counter.n, bundle.serveCart(b, cartsvc.NewService(pool, bundle.catalog, cartsvc.Options{
		Currency: "EUR", Now: bundle.clock.Now, Users: cartsvc.UserLimits{Rate: 1e9},
	}))
}

// statementCounter is a pgx tracer counting statements sent.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
