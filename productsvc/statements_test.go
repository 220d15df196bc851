package productsvc_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/productsvc"
)

// statementLog is a pgx tracer recording the statements a pool runs (the
// first line of each, which for sqlc's is "-- name: X …").
type statementLog struct {
	mu  sync.Mutex
	all []string
}

func (l *statementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	first, _, _ := strings.Cut(data.SQL, "\n")
	if !strings.Contains(first, "NotifyOutbox") { // sent after the commit, on its own
		l.mu.Lock()
		l.all = append(l.all, first)
		l.mu.Unlock()
	}
	return ctx
}

func (l *statementLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// take returns the statements recorded since the last take.
func (l *statementLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := l.all
	l.all = nil
	return all
}

// TestStatementsPerWrite counts the statements each catalog write sends
// (BEGIN and COMMIT included), with the real outbox: a change and its
// events need no lock or read that the write itself cannot take.
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

	count := func(what string, want int, call func() error) {
		t.Helper()
		log.take()
		if err := call(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := log.take()
		t.Logf("%s: %d statements: %s", what, len(got), strings.Join(got, " | "))
		if len(got) != want {
			t.Errorf("%s sent %d statements, want %d", what, len(got), want)
		}
	}
	var shoes, hats *productv1.Category
	count("CreateCategory", 4, func() error {
		resp, err := cats.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: "Shoes"}))
		shoes = resp.Msg.GetCategory()
		return err
	})
	hats = mustCategory(t, cats, "Hats")
	var p *productv1.Product
	count("CreateProduct", 4, func() error {
		resp, err := products.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
			Sku: "S-1", Name: "Shoe", CategoryId: shoes.Id, Price: eur(100),
		}))
		p = resp.Msg.GetProduct()
		return err
	})
	count("UpdateProduct (price)", 4, func() error {
		_, err := products.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{
			Product: &productv1.Product{Id: p.Id, Price: eur(200)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
		}))
		return err
	})
	count("UpdateProduct (move)", 5, func() error {
		_, err := products.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{
			Product: &productv1.Product{Id: p.Id, CategoryId: hats.Id}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"category_id"}},
		}))
		return err
	})
	for i := range 3 {
		mustProduct(t, products, hats.Id, "H-"+string(rune('A'+i)))
	}
	count("UpdateCategory (rename of 4 products)", 6, func() error {
		_, err := cats.UpdateCategory(ctx, connect.NewRequest(&productv1.UpdateCategoryRequest{
			Category: &productv1.Category{Id: hats.Id, Name: "Caps"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
		}))
		return err
	})
	count("DeleteProduct", 4, func() error {
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
