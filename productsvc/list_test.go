package productsvc_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
)

// listAll pages through ListProducts with the given filters and page size.
func listAll(t *testing.T, b *testBundle, req *productv1.ListProductsRequest) []*productv1.Product {
	return listAllBetween(t, b, req, func() {})
}

// listAllBetween is listAll calling between() after each page.
func listAllBetween(t *testing.T, b *testBundle, req *productv1.ListProductsRequest, between func()) []*productv1.Product {
	t.Helper()
	var all []*productv1.Product
	client := b.products("", shoptest.ConnectJSON())
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("pagination does not end")
		}
		resp, err := client.ListProducts(context.Background(), connect.NewRequest(req))
		if err != nil {
			t.Fatalf("ListProducts page %d: %v", page, err)
		}
		all = append(all, resp.Msg.Products...)
		if resp.Msg.NextPageToken == "" {
			return all
		}
		req.PageToken = resp.Msg.NextPageToken
		between()
	}
}

func TestListProductsPagesInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cat := b.createCategory(t, "Paged")
	var want []string // newest first
	for i := range 25 {
		p := b.createProduct(t, cat.Id, fmt.Sprintf("PAGE-%02d", i), "Item", int64(i))
		want = append([]string{p.Sku}, want...)
	}
	got := listAll(t, b, &productv1.ListProductsRequest{PageSize: 10})
	var skus []string
	for _, p := range got {
		skus = append(skus, p.Sku)
	}
	if strings.Join(skus, ",") != strings.Join(want, ",") {
		t.Fatalf("pages gave\n%v\nwant (create_time desc)\n%v", skus, want)
	}
}

func TestListProductsTieBreaksOnID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cat := b.createCategory(t, "Ties")
	// All products share one create_time: the id alone orders them, and
	// pages must neither repeat nor skip any.
	frozen := time.Date(2026, 5, 5, 5, 5, 5, 0, time.UTC)
	catalog := productsvc.NewStore(b.pool, b.events, "EUR", func() time.Time { return frozen }, nil)
	server := &productsvc.ProductServer{Store: catalog}
	for i := range 12 {
		if _, err := server.CreateProduct(adminContext(), connect.NewRequest(&productv1.CreateProductRequest{
			Sku: fmt.Sprintf("TIE-%02d", i), Name: "Tie", CategoryId: cat.Id, Price: eur(1),
		})); err != nil {
			t.Fatal(err)
		}
	}
	got := listAll(t, b, &productv1.ListProductsRequest{PageSize: 5})
	seen := map[string]bool{}
	var prev string
	for _, p := range got {
		if seen[p.Id] {
			t.Fatalf("product %s listed twice", p.Sku)
		}
		seen[p.Id] = true
		if p.CreateTime.AsTime().Equal(frozen) {
			if prev != "" && p.Id <= prev {
				t.Fatalf("ids not ascending within one create_time: %s after %s", p.Id, prev)
			}
			prev = p.Id
		}
	}
	if len(seen) != 12 {
		t.Fatalf("listed %d distinct products, want 12", len(seen))
	}
}

// TestListProductsStableUnderConcurrentInserts pages through 150 products
// while products keep being inserted, both between pages and concurrently
// from another client: every product that existed before paging began is
// listed exactly once, and nothing is listed twice.
func TestListProductsStableUnderConcurrentInserts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cat := b.createCategory(t, "Busy")
	existing := map[string]bool{}
	for i := range 150 {
		existing[b.createProduct(t, cat.Id, fmt.Sprintf("OLD-%03d", i), "Old", 1).Id] = true
	}
	var inserted atomic.Int64
	insert := func(prefix string, i int64) {
		if _, err := b.adminProducts().CreateProduct(context.Background(), connect.NewRequest(&productv1.CreateProductRequest{
			Sku: fmt.Sprintf("%s-%04d", prefix, i), Name: "New", CategoryId: cat.Id, Price: eur(1),
		})); err != nil {
			t.Errorf("insert: %v", err)
			return
		}
		inserted.Add(1)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
				insert("BG", i)
			}
		}
	})
	var page int64
	got := listAllBetween(t, b, &productv1.ListProductsRequest{PageSize: 7}, func() {
		page++
		insert("FG", 2*page)
		insert("FG", 2*page+1)
	})
	close(stop)
	wg.Wait()
	seen := map[string]int{}
	for _, p := range got {
		seen[p.Id]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("product %s listed %d times", id, n)
		}
	}
	for id := range existing {
		if seen[id] != 1 {
			t.Errorf("pre-existing product %s listed %d times, want 1", id, seen[id])
		}
	}
	t.Logf("paged %d products while %d were inserted", len(got), inserted.Load())
}

func TestListProductsFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	shoes, hats := b.createCategory(t, "Shoes"), b.createCategory(t, "Hats")
	b.createProduct(t, shoes.Id, "S-1", "Red running shoe", 5000)
	b.createProduct(t, shoes.Id, "S-2", "Blue walking shoe", 8000)
	b.createProduct(t, hats.Id, "H-1", "Red wool hat", 2000)
	b.createProduct(t, hats.Id, "H-2", "Straw hat", 9000)
	str := func(s string) *string { return &s }
	i64 := func(n int64) *int64 { return &n }
	cases := []struct {
		name string
		req  *productv1.ListProductsRequest
		want string
	}{
		{"category", &productv1.ListProductsRequest{CategoryId: &hats.Id}, "H-2,H-1"},
		{"query", &productv1.ListProductsRequest{Query: str("red")}, "H-1,S-1"},
		{"query two words", &productv1.ListProductsRequest{Query: str("red shoe")}, "S-1"},
		{"query quoted phrase", &productv1.ListProductsRequest{Query: str(`"walking shoe"`)}, "S-2"},
		{"query excluding", &productv1.ListProductsRequest{Query: str("hat -straw")}, "H-1"},
		{"min price", &productv1.ListProductsRequest{MinPriceMinor: i64(8000)}, "H-2,S-2"},
		{"price range", &productv1.ListProductsRequest{MinPriceMinor: i64(2000), MaxPriceMinor: i64(5000)}, "H-1,S-1"},
		{"all filters", &productv1.ListProductsRequest{CategoryId: &shoes.Id, Query: str("shoe"), MaxPriceMinor: i64(6000)}, "S-1"},
		{"nothing matches", &productv1.ListProductsRequest{Query: str("umbrella")}, ""},
	}
	for _, c := range cases {
		var skus []string
		for _, p := range listAll(t, b, c.req) {
			skus = append(skus, p.Sku)
		}
		if got := strings.Join(skus, ","); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	client := b.products("", shoptest.ConnectJSON())
	ctx := context.Background()
	for name, req := range map[string]*productv1.ListProductsRequest{
		"min above max":   {MinPriceMinor: i64(10), MaxPriceMinor: i64(5)},
		"negative min":    {MinPriceMinor: i64(-1)},
		"empty query":     {Query: str("  ")},
		"bad category id": {CategoryId: str("shoes")},
	} {
		if _, err := client.ListProducts(ctx, connect.NewRequest(req)); shoptest.Code(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

func TestPageTokenIsBoundToItsFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cat := b.createCategory(t, "Bound")
	for i := range 3 {
		b.createProduct(t, cat.Id, fmt.Sprintf("B-%d", i), "Bound item", 1)
	}
	client := b.products("", shoptest.ConnectJSON())
	ctx := context.Background()
	q := "bound"
	first, err := client.ListProducts(ctx, connect.NewRequest(&productv1.ListProductsRequest{PageSize: 1, Query: &q}))
	if err != nil || first.Msg.NextPageToken == "" {
		t.Fatalf("first page: %v (token %q)", err, first.Msg.GetNextPageToken())
	}
	other := "item"
	_, err = client.ListProducts(ctx, connect.NewRequest(&productv1.ListProductsRequest{PageSize: 1, Query: &other, PageToken: first.Msg.NextPageToken}))
	if shoptest.Code(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "page_token") {
		t.Fatalf("token with other filters: %v, want InvalidArgument naming page_token", err)
	}
	// The same filters with another page size are fine.
	if _, err := client.ListProducts(ctx, connect.NewRequest(&productv1.ListProductsRequest{PageSize: 2, Query: &q, PageToken: first.Msg.NextPageToken})); err != nil {
		t.Fatalf("token with the same filters: %v", err)
	}
}

func TestListCategoriesPages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 7 {
		b.createCategory(t, fmt.Sprintf("Cat %d", i))
	}
	client := b.categories("", shoptest.ConnectJSON())
	var names []string
	req := &productv1.ListCategoriesRequest{PageSize: 3}
	for {
		resp, err := client.ListCategories(context.Background(), connect.NewRequest(req))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.Msg.Categories {
			names = append(names, c.Name)
		}
		if resp.Msg.NextPageToken == "" {
			break
		}
		req.PageToken = resp.Msg.NextPageToken
	}
	if got := strings.Join(names, ","); got != "Cat 6,Cat 5,Cat 4,Cat 3,Cat 2,Cat 1,Cat 0" {
		t.Fatalf("categories = %s", got)
	}
}
