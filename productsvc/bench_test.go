package productsvc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// BenchmarkGetProduct measures GetProduct over real HTTP (Connect, binary
// protobuf) against a real database, next to a baseline measured in the same
// loop: a gRPC health check, which crosses the same server stack and makes
// one database round trip (the readiness ping). get/ping is the ratio;
// get-ns/op is GetProduct alone.
func BenchmarkGetProduct(b *testing.B) {
	bundle := setup(b)
	cat := bundle.createCategory(b, "Bench")
	p := bundle.createProduct(b, cat.Id, "BENCH-1", "Bench item", 100)
	proto := shoptest.Protocols()[1] // connect+proto
	client := bundle.products("", proto)
	health := grpchealth.NewClient(proto.Client, bundle.url)
	ctx := context.Background()
	req := connect.NewRequest(&productv1.GetProductRequest{Id: p.Id})
	var get, ping time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		if _, err := client.GetProduct(ctx, req); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := health.Check(ctx, &grpchealth.CheckRequest{}); err != nil {
			b.Fatal(err)
		}
		get, ping = get+t1.Sub(t0), ping+time.Since(t1)
		n++
	}
	b.ReportMetric(float64(get.Nanoseconds())/float64(n), "get-ns/op")
	b.ReportMetric(float64(get)/float64(ping), "get/ping")
}

// BenchmarkBatchGetProducts measures one BatchGetProducts of 100 ids (what a
// full cart costs the catalog) against 100 sequential GetProducts in the
// same run: batch/sequential is the saving of the one-query batch.
func BenchmarkBatchGetProducts(b *testing.B) {
	bundle := setup(b)
	cat := bundle.createCategory(b, "Bench")
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = bundle.createProduct(b, cat.Id, fmt.Sprintf("BENCH-%03d", i), "Bench item", 100).Id
	}
	client := bundle.products("", shoptest.Protocols()[1])
	ctx := context.Background()
	batchReq := connect.NewRequest(&productv1.BatchGetProductsRequest{Ids: ids})
	var batch, sequential time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		resp, err := client.BatchGetProducts(ctx, batchReq)
		if err != nil || len(resp.Msg.Products) != 100 {
			b.Fatalf("batch: %v", err)
		}
		t1 := time.Now()
		for _, id := range ids {
			if _, err := client.GetProduct(ctx, connect.NewRequest(&productv1.GetProductRequest{Id: id})); err != nil {
				b.Fatal(err)
			}
		}
		batch, sequential = batch+t1.Sub(t0), sequential+time.Since(t1)
		n++
	}
	b.ReportMetric(float64(batch.Nanoseconds())/float64(n), "batch-ns/op")
	b.ReportMetric(float64(batch)/float64(sequential), "batch/sequential")
}

// benchWorkers is the concurrency of the write benchmarks and of their
// raw-INSERT baseline (the load tool uses 8 workers too).
const benchWorkers = 8

// concurrently runs op(0) … op(n-1) on benchWorkers goroutines and returns
// the wall time they took.
func concurrently(b *testing.B, n int, op func(i int) error) time.Duration {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, benchWorkers)
	start := time.Now()
	for range benchWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return elapsed
}

// rawInserter is the write baseline: single-row INSERTs with pgx, each its
// own transaction, into a plain table of the same database.
type rawInserter struct{ pool *pgxpool.Pool }

func newRawInserter(b *testing.B, pool *pgxpool.Pool) rawInserter {
	b.Helper()
	if _, err := pool.Exec(context.Background(),
		`CREATE TABLE bench_insert (id uuid PRIMARY KEY, n bigint NOT NULL, note text NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	return rawInserter{pool}
}

func (r rawInserter) insert(i int) error {
	_, err := r.pool.Exec(context.Background(), `INSERT INTO bench_insert (id, n, note) VALUES ($1, $2, $3)`,
		uuid.New(), i, "a row about as wide as a product's")
	return err
}

// BenchmarkUpdateProduct measures UpdateProduct over real HTTP (Connect,
// binary protobuf, an admin token) writing its outbox row for one
// subscriber while the relay delivers to a sink, against raw single-row
// INSERTs on the same database; each phase is 200 calls by 8 workers, and
// the phases alternate within every iteration. update/insert is the ratio
// of their rates (the "UpdateProduct ÷ raw INSERT").
//
//	go test -run '^$' -bench '^BenchmarkUpdateProduct$' -benchtime 10x ./productsvc
func BenchmarkUpdateProduct(b *testing.B) {
	bundle := eventsSetup(b)
	bundle.startRelay(b)
	raw := newRawInserter(b, bundle.pool)
	ctx := context.Background()
	p := shoptest.Protocols()[1] // connect+proto
	admin := productv1connect.NewProductServiceClient(p.Client, bundle.url, p.ClientOptions(bundle.admin)...)
	cats := productv1connect.NewCategoryServiceClient(p.Client, bundle.url, p.ClientOptions(bundle.admin)...)
	cat, err := cats.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: "Bench"}))
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 64)
	for i := range ids {
		resp, err := admin.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
			Sku: fmt.Sprintf("BENCH-%02d", i), Name: "Bench item", CategoryId: cat.Msg.Category.Id, Price: eur(100),
		}))
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = resp.Msg.Product.Id
	}
	const ops = 200
	var update, insert time.Duration
	price := atomic.Int64{}
	for b.Loop() {
		update += concurrently(b, ops, func(i int) error {
			_, err := admin.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{
				Product:    &productv1.Product{Id: ids[i%len(ids)], Price: eur(price.Add(1))},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
			}))
			return err
		})
		insert += concurrently(b, ops, raw.insert)
	}
	b.ReportMetric(float64(update.Nanoseconds())/float64(b.N*ops), "update-ns/op")
	b.ReportMetric(float64(insert)/float64(update), "update/insert")
}

// loadProducts inserts n products into the categories cats (product g into
// cats[g % len(cats)]) with one statement:
// every 37th product's name has the word "trail" (2.7% of them, about the
// share in the EXPLAIN), every 1000th "rare-widget", the others
// "common"; descriptions have about 250 characters; create_time descends
// one second per product.
func loadProducts(tb testing.TB, pool *pgxpool.Pool, cats []string, n int) {
	tb.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `
		INSERT INTO products (id, sku, name, description, category_id, category_name, price_minor, currency_code, version, create_time, update_time)
		SELECT gen_random_uuid(), 'BULK-' || g,
		       'Product ' || g || CASE WHEN g % 1000 = 0 THEN ' rare-widget' WHEN g % 37 = 0 THEN ' trail' ELSE ' common' END,
		       'Bulk description ' || (g % 97) || ', ' || repeat('a sturdy everyday thing, made to last; ', 6),
		       ($1::uuid[])[1 + g % cardinality($1::uuid[])], 'Bulk', g, 'EUR', 1, now() - g * interval '1 second', now()
		FROM generate_series(1, $2::int) AS g`, cats, n)
	if err != nil {
		tb.Fatalf("load %d products: %v", n, err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE products"); err != nil {
		tb.Fatal(err)
	}
}

// plainJSON is the read baseline: a net/http handler answering a small JSON
// object, on its own loopback server.
func plainJSON(b *testing.B) (url string) {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok", "items": []int{1, 2, 3}})
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

// BenchmarkListProductsSearch measures ListProducts with a text query
// ("trail", 2.7% of 10k products) and page_size 20 over real HTTP
// (Connect, binary protobuf) against a plain net/http JSON handler; each
// phase is 200 calls by 8 workers, alternating within every iteration.
// search/plain is the ratio of their rates (the issue's "ListProducts with
// a search query ÷ plain").
//
//	go test -run '^$' -bench '^BenchmarkListProductsSearch$' -benchtime 8x ./productsvc
func BenchmarkListProductsSearch(b *testing.B) {
	bundle := setup(b)
	loadProducts(b, bundle.pool, []string{bundle.createCategory(b, "Bulk").Id}, 10000)
	client := bundle.products("", shoptest.Protocols()[1])
	plain := plainJSON(b)
	httpClient := shoptest.Protocols()[1].Client
	ctx := context.Background()
	query := "trail"
	const ops = 200
	var search, base time.Duration
	for b.Loop() {
		search += concurrently(b, ops, func(int) error {
			resp, err := client.ListProducts(ctx, connect.NewRequest(&productv1.ListProductsRequest{Query: &query, PageSize: 20}))
			if err == nil && len(resp.Msg.Products) != 20 {
				err = fmt.Errorf("got %d products, want 20", len(resp.Msg.Products))
			}
			return err
		})
		base += concurrently(b, ops, func(int) error {
			resp, err := httpClient.Get(plain)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return err
		})
	}
	b.ReportMetric(float64(search.Nanoseconds())/float64(b.N*ops), "search-ns/op")
	b.ReportMetric(float64(base)/float64(search), "search/plain")
}
