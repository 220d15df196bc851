package productsvc_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// TestRetriedUpdateAppliesOnce: an UpdateProduct whose answer was lost and
// that is sent again with its request_id returns the first result and adds
// no version and no event; without a request_id each call is a change.
func TestRetriedUpdateAppliesOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	prods := b.adminProducts()
	cat := b.createCategory(t, "Retries")
	p := b.createProduct(t, cat.Id, "RETRY-1", "Kettle", 1000)

	update := func(price int64, requestID *string) (*productv1.Product, error) {
		resp, err := prods.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{
			Product:    &productv1.Product{Id: p.Id, Price: eur(price)},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
			RequestId:  requestID,
		}))
		if err != nil {
			return nil, err
		}
		return resp.Msg.GetProduct(), nil
	}
	events := func() int {
		b.events.mu.Lock()
		defer b.events.mu.Unlock()
		return len(b.events.productsChanged)
	}
	before := events()
	first, err := update(1200, proto.String("price-1200"))
	if err != nil {
		t.Fatal(err)
	}
	// The retries, one after the other and several at once.
	var wg sync.WaitGroup
	answers := make([]*productv1.Product, 8)
	errs := make([]error, len(answers))
	for i := range answers {
		wg.Go(func() { answers[i], errs[i] = update(1200, proto.String("price-1200")) })
	}
	wg.Wait()
	for i, got := range answers {
		if errs[i] != nil || !proto.Equal(got, first) {
			t.Fatalf("retry %d = %v, %v; want the first answer %v", i, got, errs[i], first)
		}
	}
	if first.Version != p.Version+1 || events()-before != 1 {
		t.Fatalf("after 9 calls with one request_id: version %d, %d events; want %d and 1", first.Version, events()-before, p.Version+1)
	}

	// A different request under the same id is refused, naming the field.
	if _, err := update(1300, proto.String("price-1200")); shoptest.Code(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "request_id") {
		t.Fatalf("another request with a used request_id: %v; want InvalidArgument naming request_id", err)
	}
	for _, bad := range []string{"", strings.Repeat("x", 65), "a\nb"} {
		if _, err := update(1300, proto.String(bad)); shoptest.Code(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "request_id") {
			t.Fatalf("request_id %q: %v; want InvalidArgument naming request_id", bad, err)
		}
	}
	// Without a request_id, a repeat is a change of its own.
	for range 2 {
		if _, err := update(1400, nil); err != nil {
			t.Fatal(err)
		}
	}
	got, err := prods.GetProduct(ctx, connect.NewRequest(&productv1.GetProductRequest{Id: p.Id}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Msg.Product.Version != first.Version+2 || events()-before != 3 {
		t.Fatalf("after two updates without request_id: version %d, %d events; want %d and 3", got.Msg.Product.Version, events()-before, first.Version+2)
	}
}

// TestRetriedCreateAndDeleteApplyOnce: a retried create returns the same
// product (no second one, no AlreadyExists), a retried delete succeeds
// again instead of NotFound; categories behave alike.
func TestRetriedCreateAndDeleteApplyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cats, prods := b.adminCategories(), b.adminProducts()
	var cat *productv1.Category
	for range 2 {
		resp, err := cats.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: "Once", RequestId: proto.String("cat-once")}))
		if err != nil {
			t.Fatalf("CreateCategory with request_id: %v", err)
		}
		if cat != nil && !proto.Equal(resp.Msg.Category, cat) {
			t.Fatalf("retried CreateCategory = %v, want %v", resp.Msg.Category, cat)
		}
		cat = resp.Msg.Category
	}
	var p *productv1.Product
	for range 2 {
		resp, err := prods.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
			Sku: "ONCE-1", Name: "Once", CategoryId: cat.Id, Price: eur(500), RequestId: proto.String("create-once"),
		}))
		if err != nil {
			t.Fatalf("CreateProduct with request_id: %v", err)
		}
		if p != nil && !proto.Equal(resp.Msg.Product, p) {
			t.Fatalf("retried CreateProduct = %v, want %v", resp.Msg.Product, p)
		}
		p = resp.Msg.Product
	}
	if n := b.countRows(t, "products"); n != 1 {
		t.Fatalf("%d products after a retried create, want 1", n)
	}
	for range 2 {
		if _, err := prods.DeleteProduct(ctx, connect.NewRequest(&productv1.DeleteProductRequest{Id: p.Id, RequestId: proto.String("delete-once")})); err != nil {
			t.Fatalf("DeleteProduct with request_id: %v", err)
		}
		if _, err := cats.DeleteCategory(ctx, connect.NewRequest(&productv1.DeleteCategoryRequest{Id: cat.Id, RequestId: proto.String("delete-cat-once")})); err != nil {
			t.Fatalf("DeleteCategory with request_id: %v", err)
		}
	}
	b.events.mu.Lock()
	deleted := len(b.events.deleted)
	b.events.mu.Unlock()
	if deleted != 1 {
		t.Fatalf("%d ProductDeleted events after a retried delete, want 1", deleted)
	}
	if _, err := prods.DeleteProduct(ctx, connect.NewRequest(&productv1.DeleteProductRequest{Id: p.Id})); shoptest.Code(err) != connect.CodeNotFound {
		t.Fatalf("a new delete without request_id: %v; want NotFound", err)
	}
}
