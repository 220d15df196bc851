package productsvc_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/productsvc"
)

// statementLog is a pgx tracer recording the round trips a pool makes:
// for each, the first line of every statement in it (for sqlc's, "-- name:
// X …"; BEGIN and COMMIT as "begin" and "commit"). A batch is one round
// trip; statements prepared on a connection's first use of them are not
// counted.
type statementLog struct {
	mu    sync.Mutex
	trips [][]string
}

func firstLine(sql string) string {
	first, _, _ := strings.Cut(sql, "\n")
	if name, ok := strings.CutPrefix(first, "-- name: "); ok {
		first, _, _ = strings.Cut(name, " ")
	}
	return first
}

func (l *statementLog) record(trip []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trips = append(l.trips, trip)
}

func (l *statementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if name := firstLine(data.SQL); !strings.Contains(name, "NotifyOutbox") { // sent after the commit, on its own
		l.record([]string{name})
	}
	return ctx
}

func (l *statementLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (l *statementLog) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	trip := make([]string, len(data.Batch.QueuedQueries))
	for i, q := range data.Batch.QueuedQueries {
		trip[i] = firstLine(q.SQL)
	}
	l.record(trip)
	return ctx
}

func (l *statementLog) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (l *statementLog) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// take returns the round trips recorded since the last take.
func (l *statementLog) take() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	trips := l.trips
	l.trips = nil
	return trips
}

// TestStatementsPerWrite counts the round trips and statements (BEGIN and
// COMMIT included) each catalog write sends, with the real outbox: a
// change and its events need no lock or read that the write itself cannot
// take, and the statements that need no answer (the outbox INSERT, the
// stored result) travel with the next one that does, or with COMMIT.
func TestStatementsPerWrite(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewPool(t, productSchema)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	log := &statementLog{}
	cfg.ConnConfig.Tracer = log
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	catalog := productsvc.NewStore(pool, productsvc.NewOutbox([]string{"cartsvc", "audit"}, nil, nil), "EUR", nil, nil)
	cats, products := &productsvc.CategoryServer{Store: catalog}, &productsvc.ProductServer{Store: catalog}
	ctx := adminContext()

	count := func(what string, wantTrips, wantStatements int, call func() error) {
		t.Helper()
		log.take()
		if err := call(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		trips := log.take()
		statements := 0
		for _, trip := range trips {
			statements += len(trip)
		}
		t.Logf("%s: %d round trips, %d statements: %v", what, len(trips), statements, trips)
		if len(trips) != wantTrips || statements != wantStatements {
			t.Errorf("%s made %d round trips with %d statements, want %d with %d: %v", what, len(trips), statements, wantTrips, wantStatements, trips)
		}
	}
	var shoes, hats *productv1.Category
	count("CreateCategory", 2, 4, func() error {
		resp, err := cats.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: "Shoes"}))
		shoes = resp.Msg.GetCategory()
		return err
	})
	hats = mustCategory(t, cats, "Hats")
	var p *productv1.Product
	count("CreateProduct", 2, 4, func() error {
		resp, err := products.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
			Sku: "S-1", Name: "Shoe", CategoryId: shoes.Id, Price: eur(100),
		}))
		p = resp.Msg.GetProduct()
		return err
	})
	price := func(amount int64, requestID *string) func() error {
		return func() error {
			_, err := products.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{
				Product: &productv1.Product{Id: p.Id, Price: eur(amount)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
				RequestId: requestID,
			}))
			return err
		}
	}
	count("UpdateProduct (price)", 2, 4, price(200, nil))
	// With a request_id: the lock and the lookup of a stored result, the
	// UPDATE, then the outbox, the result, pruning and COMMIT.
	count("UpdateProduct (price, request_id)", 3, 8, price(300, proto.String("price-300")))
	count("UpdateProduct (price, request_id repeated)", 2, 4, price(300, proto.String("price-300")))
	count("UpdateProduct (move)", 3, 5, func() error {
		_, err := products.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{
			Product: &productv1.Product{Id: p.Id, CategoryId: hats.Id}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"category_id"}},
		}))
		return err
	})
	for i := range 3 {
		mustProduct(t, products, hats.Id, "H-"+string(rune('A'+i)))
	}
	count("UpdateCategory (rename of 4 products)", 3, 6, func() error {
		_, err := cats.UpdateCategory(ctx, connect.NewRequest(&productv1.UpdateCategoryRequest{
			Category: &productv1.Category{Id: hats.Id, Name: "Caps"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
		}))
		return err
	})
	count("DeleteProduct", 2, 4, func() error {
		_, err := products.DeleteProduct(ctx, connect.NewRequest(&productv1.DeleteProductRequest{Id: p.Id}))
		return err
	})
}

func mustCategory(t *testing.T, s *productsvc.CategoryServer, name string) *productv1.Category {
	t.Helper()
	resp, err := s.CreateCategory(adminContext(), connect.NewRequest(&productv1.CreateCategoryRequest{Name: name}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.Category
}

func mustProduct(t *testing.T, s *productsvc.ProductServer, categoryID, sku string) *productv1.Product {
	t.Helper()
	resp, err := s.CreateProduct(adminContext(), connect.NewRequest(&productv1.CreateProductRequest{
		Sku: sku, Name: "Item " + sku, CategoryId: categoryID, Price: eur(100),
	}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.Product
}
