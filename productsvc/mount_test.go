package productsvc_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
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
