package productsvc_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/pagetoken"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// TestListPlansUseTheirIndexes loads 100k products and checks with EXPLAIN
// that each ListProducts statement finds its rows through its index, under
// custom plans (planned for the arguments) and generic ones (one plan for
// all arguments, which prepared statements may switch to after five
// executions) for the statements that run prepared. A text search is
// planned for its arguments (the handler runs it through customPlans): a
// rare word goes through the GIN index over the stored search vectors, a
// word in most products walks product_search_list_idx, and neither computes
// a tsvector. Its generic plan, which would have to pick one way for every
// word, is logged.
func TestListPlansUseTheirIndexes(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 100k rows")
	}
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var cats []string
	for i := range 20 {
		cats = append(cats, b.createCategory(t, fmt.Sprintf("Bulk %d", i)).Id)
	}
	small := b.createCategory(t, "Small")
	for i := range 3 {
		b.createProduct(t, small.Id, fmt.Sprintf("SMALL-%d", i), "Small rare-widget", 100)
	}
	start := time.Now()
	loadProducts(t, b.pool, cats, 100000)
	t.Logf("loaded 100k products in %v", time.Since(start).Round(time.Millisecond))
	catID := pgtype.UUID{Bytes: [16]byte(uuid.MustParse(small.Id)), Valid: true}
	after, price := pagetoken.First.CreateTime, pgtype.Int8{Int64: 500, Valid: true}
	cases := []struct {
		name    string
		index   []string // acceptable indexes (one of them); none: any plan
		generic bool     // whether the generic plan must use them too
		run     func(q *productdb.Queries) error
	}{
		{"list", []string{"products_list_idx"}, true, func(q *productdb.Queries) error {
			_, err := q.ListProducts(ctx, productdb.ListProductsParams{AfterTime: after, MinPriceMinor: price, PageLimit: 51})
			return err
		}},
		{"list in a category", []string{"products_category_list_idx"}, true, func(q *productdb.Queries) error {
			_, err := q.ListCategoryProducts(ctx, productdb.ListCategoryProductsParams{CategoryID: catID.Bytes, AfterTime: after, PageLimit: 51})
			return err
		}},
		{"search a rare word", []string{"product_search_idx"}, false, func(q *productdb.Queries) error {
			_, err := q.SearchProducts(ctx, productdb.SearchProductsParams{Query: "rare-widget", AfterTime: after, PageLimit: 51})
			return err
		}},
		{"search a common word (96% of rows)", []string{"product_search_list_idx"}, false, func(q *productdb.Queries) error {
			_, err := q.SearchProducts(ctx, productdb.SearchProductsParams{Query: "common", AfterTime: after, PageLimit: 51})
			return err
		}},
		{"search in a small category and a price range", []string{"product_search_idx", "products_category_list_idx"}, false, func(q *productdb.Queries) error {
			_, err := q.SearchProducts(ctx, productdb.SearchProductsParams{Query: "rare-widget", CategoryID: catID, MaxPriceMinor: price, AfterTime: after, PageLimit: 51})
			return err
		}},
	}
	for _, c := range cases {
		// Capture the exact SQL and arguments sqlc sends, then EXPLAIN them.
		capture := &sqlCapture{}
		_ = c.run(productdb.New(capture))
		for _, generic := range []bool{false, true} {
			plan := explain(t, b, capture, generic)
			t.Logf("%s, generic %v:\n%s", c.name, generic, plan)
			if (!generic || c.generic) && !slices.ContainsFunc(c.index, func(index string) bool { return strings.Contains(plan, index) }) {
				t.Errorf("%s (generic plan: %v) uses none of %v", c.name, generic, c.index)
			}
		}
	}
	resp, err := b.products("", shoptest.ConnectJSON()).ListProducts(ctx, connect.NewRequest(&productv1.ListProductsRequest{Query: ptr("rare-widget"), PageSize: 100}))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Msg.Products) != 100 {
		t.Fatalf("rare-widget matched %d products on the first page, want 100 (of 103 in all)", len(resp.Msg.Products))
	}
}

// explain returns EXPLAIN ANALYZE of the captured statement, prepared on a
// connection of its own and run with its arguments, with a generic plan
// when generic is set (plan_cache_mode = force_generic_plan), else a custom
// plan.
func explain(t *testing.T, b *testBundle, c *sqlCapture, generic bool) string {
	t.Helper()
	ctx := context.Background()
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	mode := "force_custom_plan"
	if generic {
		mode = "force_generic_plan"
	}
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "RESET plan_cache_mode")
	if _, err := conn.Conn().Prepare(ctx, "explained", c.sql); err != nil {
		t.Fatal(err)
	}
	defer conn.Conn().Deallocate(ctx, "explained")
	placeholders := make([]string, len(c.args))
	for i := range placeholders {
		placeholders[i] = fmt.Sprintf("$%d", i+1)
	}
	args := append([]any{pgx.QueryExecModeSimpleProtocol}, c.args...)
	rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE explained("+strings.Join(placeholders, ", ")+")", args...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func ptr[T any](v T) *T { return &v }

// sqlCapture is a productdb.DBTX that records the query it is asked to run
// and runs nothing.
type sqlCapture struct {
	sql  string
	args []any
}

var errCaptured = errors.New("captured, not run")

func (c *sqlCapture) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c.sql, c.args = sql, args
	return pgconn.CommandTag{}, errCaptured
}

func (c *sqlCapture) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	c.sql, c.args = sql, args
	return nil, errCaptured
}

func (c *sqlCapture) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	c.sql, c.args = sql, args
	return errRow{}
}

type errRow struct{}

func (errRow) Scan(...any) error { return errCaptured }
