package productsvc_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

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
