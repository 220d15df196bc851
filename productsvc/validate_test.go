package productsvc_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// TestValidation sends bad input and checks the code, the field named in the
// message, and that nothing was written.
func TestValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cat := b.createCategory(t, "Valid")
	b.createProduct(t, cat.Id, "TAKEN-1", "Existing", 100)
	prods, cats := b.adminProducts(), b.adminCategories()
	good := func() *productv1.CreateProductRequest {
		return &productv1.CreateProductRequest{Sku: "NEW-1", Name: "New", CategoryId: cat.Id, Price: eur(100)}
	}
	with := func(f func(r *productv1.CreateProductRequest)) *productv1.CreateProductRequest {
		r := good()
		f(r)
		return r
	}
	cases := []struct {
		name  string
		req   *productv1.CreateProductRequest
		code  connect.Code
		field string
	}{
		{"empty name", with(func(r *productv1.CreateProductRequest) { r.Name = "" }), connect.CodeInvalidArgument, "name"},
		{"blank name", with(func(r *productv1.CreateProductRequest) { r.Name = "   " }), connect.CodeInvalidArgument, "name"},
		{"long name", with(func(r *productv1.CreateProductRequest) { r.Name = strings.Repeat("é", 201) }), connect.CodeInvalidArgument, "name"},
		{"control char", with(func(r *productv1.CreateProductRequest) { r.Name = "a\x00b" }), connect.CodeInvalidArgument, "name"},
		{"long description", with(func(r *productv1.CreateProductRequest) { r.Description = strings.Repeat("x", 5001) }), connect.CodeInvalidArgument, "description"},
		{"empty sku", with(func(r *productv1.CreateProductRequest) { r.Sku = "" }), connect.CodeInvalidArgument, "sku"},
		{"lower-case sku", with(func(r *productv1.CreateProductRequest) { r.Sku = "abc" }), connect.CodeInvalidArgument, "sku"},
		{"sku with space", with(func(r *productv1.CreateProductRequest) { r.Sku = "A B" }), connect.CodeInvalidArgument, "sku"},
		{"long sku", with(func(r *productv1.CreateProductRequest) { r.Sku = strings.Repeat("A", 65) }), connect.CodeInvalidArgument, "sku"},
		{"duplicate sku", with(func(r *productv1.CreateProductRequest) { r.Sku = "TAKEN-1" }), connect.CodeAlreadyExists, "TAKEN-1"},
		{"no price", with(func(r *productv1.CreateProductRequest) { r.Price = nil }), connect.CodeInvalidArgument, "price"},
		{"negative price", with(func(r *productv1.CreateProductRequest) { r.Price = eur(-1) }), connect.CodeInvalidArgument, "price.amount_minor"},
		{"price over cap", with(func(r *productv1.CreateProductRequest) { r.Price = eur(100_000_000_001) }), connect.CodeInvalidArgument, "price.amount_minor"},
		{"wrong currency", with(func(r *productv1.CreateProductRequest) { r.Price = &typev1.Money{CurrencyCode: "USD", AmountMinor: 1} }), connect.CodeInvalidArgument, "price.currency_code"},
		{"malformed category", with(func(r *productv1.CreateProductRequest) { r.CategoryId = "123" }), connect.CodeInvalidArgument, "category_id"},
		{"unknown category", with(func(r *productv1.CreateProductRequest) { r.CategoryId = "00000000-0000-4000-8000-000000000000" }), connect.CodeInvalidArgument, "category_id"},
	}
	before := b.countRows(t, "products")
	for _, c := range cases {
		_, err := prods.CreateProduct(ctx, connect.NewRequest(c.req))
		if shoptest.Code(err) != c.code || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: %v; want %v naming %q", c.name, err, c.code, c.field)
		}
	}
	if after := b.countRows(t, "products"); after != before {
		t.Errorf("products went from %d to %d after only invalid requests", before, after)
	}
	// Categories and ids.
	for _, c := range []struct {
		name  string
		err   error
		code  connect.Code
		field string
	}{
		{"empty category name", second(cats.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{}))), connect.CodeInvalidArgument, "name"},
		{"long category name", second(cats.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: strings.Repeat("n", 101)}))), connect.CodeInvalidArgument, "name"},
		{"duplicate category name (any case)", second(cats.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: "VALID"}))), connect.CodeAlreadyExists, "VALID"},
		{"malformed product id", second(prods.GetProduct(ctx, connect.NewRequest(&productv1.GetProductRequest{Id: "nope"}))), connect.CodeInvalidArgument, "id"},
		{"unknown product id", second(prods.GetProduct(ctx, connect.NewRequest(&productv1.GetProductRequest{Id: "00000000-0000-4000-8000-000000000000"}))), connect.CodeNotFound, "not found"},
		{"malformed batch id", second(prods.BatchGetProducts(ctx, connect.NewRequest(&productv1.BatchGetProductsRequest{Ids: []string{cat.Id, "x"}}))), connect.CodeInvalidArgument, "ids[1]"},
		{"negative page size", second(prods.ListProducts(ctx, connect.NewRequest(&productv1.ListProductsRequest{PageSize: -1}))), connect.CodeInvalidArgument, "page_size"},
		{"garbage page token", second(prods.ListProducts(ctx, connect.NewRequest(&productv1.ListProductsRequest{PageToken: "garbage!"}))), connect.CodeInvalidArgument, "page_token"},
	} {
		if shoptest.Code(c.err) != c.code || !strings.Contains(c.err.Error(), c.field) {
			t.Errorf("%s: %v; want %v naming %q", c.name, c.err, c.code, c.field)
		}
	}
	if n := b.countRows(t, "categories"); n != 1 {
		t.Errorf("categories = %d after invalid creates, want 1", n)
	}
}

func second[T any](_ T, err error) error { return err }
