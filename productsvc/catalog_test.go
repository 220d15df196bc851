package productsvc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
)

func TestEveryProcedureIsClassified(t *testing.T) {
	t.Parallel()
	procs := auth.Procedures(
		productv1.File_shop_product_v1_category_proto.Services().ByName("CategoryService"),
		productv1.File_shop_product_v1_product_proto.Services().ByName("ProductService"),
	)
	if len(procs) != 11 {
		t.Fatalf("found %d procedures, want 11", len(procs))
	}
	if err := productsvc.Rules.Check(procs); err != nil {
		t.Fatal(err)
	}
}

func TestCatalogOverEveryProtocol(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for i, p := range shoptest.Protocols() {
		t.Run(p.Name, func(t *testing.T) {
			cats, prods := b.categories(b.tokens["admin"], p), b.products(b.tokens["admin"], p)
			cat, err := cats.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: "Shoes " + p.Name}))
			if err != nil {
				t.Fatalf("CreateCategory: %v", err)
			}
			created, err := prods.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
				Sku: fmt.Sprintf("SKU-%d", i), Name: "Runner", CategoryId: cat.Msg.Category.Id, Price: eur(4999),
			}))
			if err != nil {
				t.Fatalf("CreateProduct: %v", err)
			}
			got, err := b.products("", p).GetProduct(ctx, connect.NewRequest(&productv1.GetProductRequest{Id: created.Msg.Product.Id}))
			if err != nil {
				t.Fatalf("public GetProduct: %v", err)
			}
			pr := got.Msg.Product
			if pr.CategoryName != "Shoes "+p.Name || pr.Price.GetAmountMinor() != 4999 || pr.Version != 1 {
				t.Fatalf("GetProduct = %v; want category name, price 4999 and version 1", pr)
			}
		})
	}
}

func TestReadsWorkWithConnectGET(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cat := b.createCategory(t, "Hats")
	p := b.createProduct(t, cat.Id, "HAT-1", "Bowler", 2500)
	msg, _ := protojson.Marshal(&productv1.GetProductRequest{Id: p.Id})
	u := b.url + productv1connect.ProductServiceGetProductProcedure + "?encoding=json&message=" + url.QueryEscape(string(msg))
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"Bowler"`) {
		t.Fatalf("GET %s = %d %s; want 200 with the product", u, resp.StatusCode, body)
	}
	// Writes are not GET-able.
	msg, _ = protojson.Marshal(&productv1.DeleteProductRequest{Id: p.Id})
	resp2, err := http.Get(b.url + productv1connect.ProductServiceDeleteProductProcedure + "?encoding=json&message=" + url.QueryEscape(string(msg)))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode == http.StatusOK {
		t.Fatalf("GET DeleteProduct succeeded; writes must need POST")
	}
}

// TestAuthMatrix calls every procedure as every kind of caller.
func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cat := b.createCategory(t, "Matrix")
	p := b.createProduct(t, cat.Id, "MATRIX-1", "Thing", 100)

	type call func(cats productv1connect.CategoryServiceClient, prods productv1connect.ProductServiceClient) error
	calls := map[string]struct {
		admin bool // writes need admin; reads are public
		call  call
	}{
		"GetCategory": {false, func(c productv1connect.CategoryServiceClient, _ productv1connect.ProductServiceClient) error {
			_, err := c.GetCategory(ctx, connect.NewRequest(&productv1.GetCategoryRequest{Id: cat.Id}))
			return err
		}},
		"ListCategories": {false, func(c productv1connect.CategoryServiceClient, _ productv1connect.ProductServiceClient) error {
			_, err := c.ListCategories(ctx, connect.NewRequest(&productv1.ListCategoriesRequest{}))
			return err
		}},
		"GetProduct": {false, func(_ productv1connect.CategoryServiceClient, c productv1connect.ProductServiceClient) error {
			_, err := c.GetProduct(ctx, connect.NewRequest(&productv1.GetProductRequest{Id: p.Id}))
			return err
		}},
		"BatchGetProducts": {false, func(_ productv1connect.CategoryServiceClient, c productv1connect.ProductServiceClient) error {
			_, err := c.BatchGetProducts(ctx, connect.NewRequest(&productv1.BatchGetProductsRequest{Ids: []string{p.Id}}))
			return err
		}},
		"ListProducts": {false, func(_ productv1connect.CategoryServiceClient, c productv1connect.ProductServiceClient) error {
			_, err := c.ListProducts(ctx, connect.NewRequest(&productv1.ListProductsRequest{}))
			return err
		}},
		// Writes use arguments that fail validation, so an admin call proves
		// it got past auth (InvalidArgument) without changing anything.
		"CreateCategory": {true, func(c productv1connect.CategoryServiceClient, _ productv1connect.ProductServiceClient) error {
			_, err := c.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{}))
			return err
		}},
		"UpdateCategory": {true, func(c productv1connect.CategoryServiceClient, _ productv1connect.ProductServiceClient) error {
			_, err := c.UpdateCategory(ctx, connect.NewRequest(&productv1.UpdateCategoryRequest{}))
			return err
		}},
		"DeleteCategory": {true, func(c productv1connect.CategoryServiceClient, _ productv1connect.ProductServiceClient) error {
			_, err := c.DeleteCategory(ctx, connect.NewRequest(&productv1.DeleteCategoryRequest{Id: "x"}))
			return err
		}},
		"CreateProduct": {true, func(_ productv1connect.CategoryServiceClient, c productv1connect.ProductServiceClient) error {
			_, err := c.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{}))
			return err
		}},
		"UpdateProduct": {true, func(_ productv1connect.CategoryServiceClient, c productv1connect.ProductServiceClient) error {
			_, err := c.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{}))
			return err
		}},
		"DeleteProduct": {true, func(_ productv1connect.CategoryServiceClient, c productv1connect.ProductServiceClient) error {
			_, err := c.DeleteProduct(ctx, connect.NewRequest(&productv1.DeleteProductRequest{Id: "x"}))
			return err
		}},
	}
	want := func(admin bool, who string) connect.Code {
		switch {
		case !admin:
			return 0 // public reads succeed for everyone
		case who == "none":
			return connect.CodeUnauthenticated
		case who == "admin":
			return connect.CodeInvalidArgument
		default:
			return connect.CodePermissionDenied
		}
	}
	for name, c := range calls {
		for _, who := range []string{"none", "alice", "service", "admin"} {
			p := shoptest.ConnectJSON()
			err := c.call(b.categories(b.tokens[who], p), b.products(b.tokens[who], p))
			if got, w := shoptest.Code(err), want(c.admin, who); got != w {
				t.Errorf("%s as %s: code %v (%v), want %v", name, who, got, err, w)
			}
		}
	}
	// A public read never looks at the token, not even a garbage one.
	bad := b.products("not-a-jwt", shoptest.ConnectJSON())
	if _, err := bad.GetProduct(ctx, connect.NewRequest(&productv1.GetProductRequest{Id: p.Id})); err != nil {
		t.Errorf("public read with a garbage token: %v, want the product (tokens are ignored on public reads)", err)
	}
}

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

func TestUpdateProduct(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	shoes, hats := b.createCategory(t, "Shoes"), b.createCategory(t, "Hats")
	p := b.createProduct(t, shoes.Id, "SHOE-1", "Runner", 5000)
	prods := b.adminProducts()
	update := func(in *productv1.Product, paths []string, expected *int64) (*productv1.Product, error) {
		var mask *fieldmaskpb.FieldMask
		if paths != nil {
			mask = &fieldmaskpb.FieldMask{Paths: paths}
		}
		resp, err := prods.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{Product: in, UpdateMask: mask, ExpectedVersion: expected}))
		if err != nil {
			return nil, err
		}
		return resp.Msg.Product, nil
	}
	v1 := int64(1)

	// Only masked fields change; the version bumps.
	got, err := update(&productv1.Product{Id: p.Id, Name: "Racer", Price: eur(1)}, []string{"price"}, &v1)
	if err != nil {
		t.Fatalf("update price: %v", err)
	}
	if got.Price.AmountMinor != 1 || got.Name != "Runner" || got.Version != 2 {
		t.Fatalf("after masked update: %v; want price 1, name unchanged, version 2", got)
	}
	// A stale expected_version is Aborted and changes nothing.
	if _, err := update(&productv1.Product{Id: p.Id, Name: "Stale"}, []string{"name"}, &v1); shoptest.Code(err) != connect.CodeAborted {
		t.Fatalf("stale expected_version: %v, want Aborted", err)
	}
	// Moving to another category copies its name.
	got, err = update(&productv1.Product{Id: p.Id, CategoryId: hats.Id}, []string{"category_id"}, nil)
	if err != nil || got.CategoryName != "Hats" || got.Version != 3 {
		t.Fatalf("move: %v, %v; want category Hats, version 3", got, err)
	}
	// An empty mask means the populated fields (AIP-134).
	got, err = update(&productv1.Product{Id: p.Id, Name: "Racer"}, nil, nil)
	if err != nil || got.Name != "Racer" || got.Price.AmountMinor != 1 || got.Version != 4 {
		t.Fatalf("implicit mask: %v, %v", got, err)
	}
	for _, c := range []struct {
		paths []string
		in    *productv1.Product
		want  string
	}{
		{[]string{"colour"}, &productv1.Product{Id: p.Id}, "update_mask"},
		{[]string{"version"}, &productv1.Product{Id: p.Id, Version: 99}, "update_mask"},
		{[]string{"category_name"}, &productv1.Product{Id: p.Id}, "update_mask"},
		{[]string{"name"}, &productv1.Product{Id: p.Id}, "product.name"},
		{[]string{"price"}, &productv1.Product{Id: p.Id, Price: eur(-5)}, "product.price.amount_minor"},
		{[]string{"category_id"}, &productv1.Product{Id: p.Id, CategoryId: "00000000-0000-4000-8000-000000000000"}, "product.category_id"},
		{[]string{"name"}, &productv1.Product{Id: "bad", Name: "x"}, "product.id"},
	} {
		if _, err := update(c.in, c.paths, nil); shoptest.Code(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), c.want) {
			t.Errorf("update %v %v: %v; want InvalidArgument naming %s", c.paths, c.in, err, c.want)
		}
	}
	// Delete, then the product never comes back through an update.
	if _, err := prods.DeleteProduct(ctx, connect.NewRequest(&productv1.DeleteProductRequest{Id: p.Id})); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := update(&productv1.Product{Id: p.Id, Name: "Zombie"}, []string{"name"}, nil); shoptest.Code(err) != connect.CodeNotFound {
		t.Fatalf("update after delete: %v, want NotFound", err)
	}
	if _, err := prods.GetProduct(ctx, connect.NewRequest(&productv1.GetProductRequest{Id: p.Id})); shoptest.Code(err) != connect.CodeNotFound {
		t.Fatalf("get after delete: %v, want NotFound", err)
	}
	if _, err := prods.DeleteProduct(ctx, connect.NewRequest(&productv1.DeleteProductRequest{Id: p.Id})); shoptest.Code(err) != connect.CodeNotFound {
		t.Fatalf("second delete: %v, want NotFound", err)
	}
	if len(b.events.deleted) != 1 || b.events.deleted[0].String() != p.Id {
		t.Fatalf("deleted events = %v, want exactly the product", b.events.deleted)
	}
}

func TestSKUUniqueOnUpdate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cat := b.createCategory(t, "C")
	b.createProduct(t, cat.Id, "A-1", "A", 1)
	p := b.createProduct(t, cat.Id, "B-1", "B", 1)
	_, err := b.adminProducts().UpdateProduct(context.Background(), connect.NewRequest(&productv1.UpdateProductRequest{
		Product: &productv1.Product{Id: p.Id, Sku: "A-1"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"sku"}},
	}))
	if shoptest.Code(err) != connect.CodeAlreadyExists {
		t.Fatalf("update to a taken sku: %v, want AlreadyExists", err)
	}
}

func TestBatchGetProducts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cat := b.createCategory(t, "Batch")
	p1 := b.createProduct(t, cat.Id, "P-1", "One", 1)
	p2 := b.createProduct(t, cat.Id, "P-2", "Two", 2)
	gone := b.createProduct(t, cat.Id, "P-3", "Three", 3)
	if _, err := b.adminProducts().DeleteProduct(ctx, connect.NewRequest(&productv1.DeleteProductRequest{Id: gone.Id})); err != nil {
		t.Fatal(err)
	}
	unknown := "00000000-0000-4000-8000-000000000001"
	pub := b.products("", shoptest.ConnectJSON())
	resp, err := pub.BatchGetProducts(ctx, connect.NewRequest(&productv1.BatchGetProductsRequest{Ids: []string{p2.Id, gone.Id, p1.Id, unknown, p2.Id}}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range resp.Msg.Products {
		got = append(got, p.Sku)
	}
	if strings.Join(got, ",") != "P-2,P-1" {
		t.Errorf("products = %v, want P-2,P-1 in request order, duplicates once", got)
	}
	if strings.Join(resp.Msg.MissingIds, ",") != gone.Id+","+unknown {
		t.Errorf("missing_ids = %v, want the deleted then the unknown id", resp.Msg.MissingIds)
	}
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = p1.Id
	}
	if _, err := pub.BatchGetProducts(ctx, connect.NewRequest(&productv1.BatchGetProductsRequest{Ids: ids})); shoptest.Code(err) != connect.CodeInvalidArgument {
		t.Errorf("101 ids: %v, want InvalidArgument", err)
	}
	if _, err := pub.BatchGetProducts(ctx, connect.NewRequest(&productv1.BatchGetProductsRequest{Ids: ids[:100]})); err != nil {
		t.Errorf("100 ids: %v, want accepted", err)
	}
	if _, err := pub.BatchGetProducts(ctx, connect.NewRequest(&productv1.BatchGetProductsRequest{})); shoptest.Code(err) != connect.CodeInvalidArgument {
		t.Errorf("no ids: %v, want InvalidArgument", err)
	}
}

func TestRenameCategoryRewritesProducts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	shoes, other := b.createCategory(t, "Shoes"), b.createCategory(t, "Other")
	var ids []string
	for i := range 3 {
		ids = append(ids, b.createProduct(t, shoes.Id, fmt.Sprintf("S-%d", i), "Shoe", 100).Id)
	}
	untouched := b.createProduct(t, other.Id, "O-1", "Other thing", 100)
	before := b.events.changedCount()
	one := int64(1)
	resp, err := b.adminCategories().UpdateCategory(ctx, connect.NewRequest(&productv1.UpdateCategoryRequest{
		Category:        &productv1.Category{Id: shoes.Id, Name: "Footwear"},
		UpdateMask:      &fieldmaskpb.FieldMask{Paths: []string{"name"}},
		ExpectedVersion: &one,
	}))
	if err != nil {
		t.Fatalf("rename: %v", err)
	}
	if resp.Msg.Category.Name != "Footwear" || resp.Msg.Category.Version != 2 {
		t.Fatalf("renamed category = %v", resp.Msg.Category)
	}
	got, err := b.adminProducts().BatchGetProducts(ctx, connect.NewRequest(&productv1.BatchGetProductsRequest{Ids: append(ids, untouched.Id)}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range got.Msg.Products {
		wantName, wantVersion := "Footwear", int64(2)
		if p.Id == untouched.Id {
			wantName, wantVersion = "Other", 1
		}
		if p.CategoryName != wantName || p.Version != wantVersion {
			t.Errorf("product %s: category_name %q version %d; want %q, %d", p.Sku, p.CategoryName, p.Version, wantName, wantVersion)
		}
	}
	if n := b.events.changedCount() - before; n != 3 {
		t.Errorf("rename published %d ProductChanged, want 3 (one per product)", n)
	}
	// A description-only update does not touch products.
	before = b.events.changedCount()
	if _, err := b.adminCategories().UpdateCategory(ctx, connect.NewRequest(&productv1.UpdateCategoryRequest{
		Category: &productv1.Category{Id: shoes.Id, Description: "All shoes"},
	})); err != nil {
		t.Fatal(err)
	}
	if n := b.events.changedCount() - before; n != 0 {
		t.Errorf("description update published %d ProductChanged, want 0", n)
	}
	// Renaming to a taken name fails and changes nothing.
	_, err = b.adminCategories().UpdateCategory(ctx, connect.NewRequest(&productv1.UpdateCategoryRequest{
		Category: &productv1.Category{Id: shoes.Id, Name: "other"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
	}))
	if shoptest.Code(err) != connect.CodeAlreadyExists {
		t.Errorf("rename to a taken name: %v, want AlreadyExists", err)
	}
}

func TestDeleteCategory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cat := b.createCategory(t, "Busy")
	p := b.createProduct(t, cat.Id, "BUSY-1", "Thing", 1)
	cats := b.adminCategories()
	_, err := cats.DeleteCategory(ctx, connect.NewRequest(&productv1.DeleteCategoryRequest{Id: cat.Id}))
	if shoptest.Code(err) != connect.CodeFailedPrecondition {
		t.Fatalf("delete a category with products: %v, want FailedPrecondition", err)
	}
	if _, err := b.adminProducts().DeleteProduct(ctx, connect.NewRequest(&productv1.DeleteProductRequest{Id: p.Id})); err != nil {
		t.Fatal(err)
	}
	if _, err := cats.DeleteCategory(ctx, connect.NewRequest(&productv1.DeleteCategoryRequest{Id: cat.Id})); err != nil {
		t.Fatalf("delete an empty category: %v", err)
	}
	if _, err := cats.GetCategory(ctx, connect.NewRequest(&productv1.GetCategoryRequest{Id: cat.Id})); shoptest.Code(err) != connect.CodeNotFound {
		t.Fatalf("get a deleted category: %v, want NotFound", err)
	}
}

// TestNoProductInADeletedCategory races product creation against category
// deletion: whatever wins, no product may reference a missing category.
func TestNoProductInADeletedCategory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const rounds, creators = 15, 4
	var created, deletedCategories int
	for round := range rounds {
		cat := b.createCategory(t, fmt.Sprintf("Race %d", round))
		errs := make(chan error, creators+1)
		start := make(chan struct{})
		for i := range creators {
			go func() {
				<-start
				_, err := b.adminProducts().CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
					Sku: fmt.Sprintf("R%d-%d", round, i), Name: "Racer", CategoryId: cat.Id, Price: eur(1),
				}))
				errs <- err
			}()
		}
		go func() {
			<-start
			_, err := b.adminCategories().DeleteCategory(ctx, connect.NewRequest(&productv1.DeleteCategoryRequest{Id: cat.Id}))
			if err == nil {
				err = errors.New("deleted")
			}
			errs <- err
		}()
		close(start)
		for range creators + 1 {
			err := <-errs
			switch {
			case err == nil:
				created++
			case err.Error() == "deleted":
				deletedCategories++
			case shoptest.Code(err) == connect.CodeInvalidArgument, shoptest.Code(err) == connect.CodeFailedPrecondition:
				// lost the race, as allowed
			default:
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
	}
	var orphans int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM products p WHERE NOT EXISTS (SELECT 1 FROM categories c WHERE c.id = p.category_id)`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rounds: %d products created, %d categories deleted, %d orphans", rounds, created, deletedCategories, orphans)
	if orphans != 0 {
		t.Fatalf("%d products reference a deleted category", orphans)
	}
	if b.countRows(t, "products") != created {
		t.Fatalf("products in the database (%d) differ from successful creates (%d)", b.countRows(t, "products"), created)
	}
}
