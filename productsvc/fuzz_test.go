package productsvc_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/internal/shoperr"
	"github.com/decoupledshop/shop/productsvc"
)

// The fuzz targets call the catalog's write handlers (and ListProducts)
// directly, on a real database, with whatever the fuzzer makes of their
// fields. Each call must end in success or a domain error the server maps
// to a client code (never a plain error, which clients would see as
// internal), and an InvalidArgument must name a field of the request.
// Run one with:
//
//	go test -run '^$' -fuzz '^FuzzUpdateProduct$' -fuzztime 30s ./productsvc
//
// Ids in the inputs may be "@category" or "@product", replaced by the ids
// of a category and a product that exist.

// fuzzCatalog is a catalog on its own database with one category and one
// product, and the handlers over it.
type fuzzCatalog struct {
	categories          *productsvc.CategoryServer
	products            *productsvc.ProductServer
	categoryID, product string
}

func newFuzzCatalog(f *testing.F) *fuzzCatalog {
	b := setup(f)
	cat := b.createCategory(f, "Fuzzed")
	p := b.createProduct(f, cat.Id, "FUZZ-1", "Fuzzed item", 100)
	return &fuzzCatalog{
		categories: &productsvc.CategoryServer{Store: b.catalog},
		products:   &productsvc.ProductServer{Store: b.catalog},
		categoryID: cat.Id, product: p.Id,
	}
}

// id replaces the placeholders by real ids.
func (c *fuzzCatalog) id(s string) string {
	switch s {
	case "@category":
		return c.categoryID
	case "@product":
		return c.product
	}
	return s
}

// mask splits a comma-separated list of paths; "" is no mask.
func mask(paths string) *fieldmaskpb.FieldMask {
	if paths == "" {
		return nil
	}
	return &fieldmaskpb.FieldMask{Paths: strings.Split(paths, ",")}
}

// checkAnswer fails the fuzz test unless err is nil or a domain error with
// a client code, and an Invalid one names one of fields (or a field under
// one of them, "price" covering "price.amount_minor").
func checkAnswer(t *testing.T, err error, fields ...string) {
	t.Helper()
	if err == nil {
		return
	}
	var e *shoperr.Error
	if !errors.As(err, &e) || shoperr.CodeOf(err) == shoperr.CodeInternal {
		t.Fatalf("answered with an internal error: %v", err)
	}
	if e.Code != shoperr.CodeInvalid {
		return
	}
	if !slices.ContainsFunc(fields, func(f string) bool { return e.Field == f || strings.HasPrefix(e.Field, f+".") }) {
		t.Fatalf("InvalidArgument names %q, want one of %v: %v", e.Field, fields, err)
	}
}

func FuzzCreateCategory(f *testing.F) {
	c := newFuzzCatalog(f)
	f.Add("Shoes", "Things for feet")
	f.Fuzz(func(t *testing.T, name, description string) {
		_, err := c.categories.CreateCategory(adminContext(), connect.NewRequest(&productv1.CreateCategoryRequest{Name: name, Description: description}))
		checkAnswer(t, err, "name", "description")
	})
}

func FuzzUpdateCategory(f *testing.F) {
	c := newFuzzCatalog(f)
	f.Add("@category", "Boots", "", "name", int64(0), false)
	f.Fuzz(func(t *testing.T, id, name, description, paths string, version int64, expect bool) {
		req := &productv1.UpdateCategoryRequest{
			Category:   &productv1.Category{Id: c.id(id), Name: name, Description: description},
			UpdateMask: mask(paths),
		}
		if expect {
			req.ExpectedVersion = &version
		}
		_, err := c.categories.UpdateCategory(adminContext(), connect.NewRequest(req))
		checkAnswer(t, err, "category", "update_mask")
	})
}

func FuzzCreateProduct(f *testing.F) {
	c := newFuzzCatalog(f)
	f.Add("NEW-1", "Boot", "A boot", "@category", "EUR", int64(1999), true)
	f.Fuzz(func(t *testing.T, sku, name, description, categoryID, currency string, amount int64, priced bool) {
		req := &productv1.CreateProductRequest{Sku: sku, Name: name, Description: description, CategoryId: c.id(categoryID)}
		if priced {
			req.Price = &typev1.Money{CurrencyCode: currency, AmountMinor: amount}
		}
		_, err := c.products.CreateProduct(adminContext(), connect.NewRequest(req))
		checkAnswer(t, err, "sku", "name", "description", "category_id", "price")
	})
}

func FuzzUpdateProduct(f *testing.F) {
	c := newFuzzCatalog(f)
	f.Add("@product", "", "", "", "", "EUR", int64(2500), true, "price", int64(0), false)
	f.Fuzz(func(t *testing.T, id, sku, name, description, categoryID, currency string, amount int64, priced bool, paths string, version int64, expect bool) {
		p := &productv1.Product{Id: c.id(id), Sku: sku, Name: name, Description: description, CategoryId: c.id(categoryID)}
		if priced {
			p.Price = &typev1.Money{CurrencyCode: currency, AmountMinor: amount}
		}
		req := &productv1.UpdateProductRequest{Product: p, UpdateMask: mask(paths)}
		if expect {
			req.ExpectedVersion = &version
		}
		_, err := c.products.UpdateProduct(adminContext(), connect.NewRequest(req))
		checkAnswer(t, err, "product", "update_mask")
	})
}

func FuzzListProducts(f *testing.F) {
	c := newFuzzCatalog(f)
	f.Add(int32(20), "", "@category", true, "boot -red", true, int64(0), false, int64(5000), true)
	f.Fuzz(func(t *testing.T, size int32, token, categoryID string, inCategory bool, query string, searched bool, low int64, hasLow bool, high int64, hasHigh bool) {
		req := &productv1.ListProductsRequest{PageSize: size, PageToken: token}
		if inCategory {
			id := c.id(categoryID)
			req.CategoryId = &id
		}
		if searched {
			req.Query = &query
		}
		if hasLow {
			req.MinPriceMinor = &low
		}
		if hasHigh {
			req.MaxPriceMinor = &high
		}
		resp, err := c.products.ListProducts(context.Background(), connect.NewRequest(req))
		checkAnswer(t, err, "page_size", "page_token", "category_id", "query", "min_price_minor", "max_price_minor")
		if err == nil && resp.Msg.NextPageToken != "" {
			// A token it issued works with the same filters.
			req.PageToken = resp.Msg.NextPageToken
			_, err := c.products.ListProducts(context.Background(), connect.NewRequest(req))
			checkAnswer(t, err)
		}
	})
}
