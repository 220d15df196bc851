package productsvc_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

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
