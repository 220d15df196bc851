package productsvc_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	"github.com/decoupledshop/shop/internal/server"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
)

// cachedReplica is a productsvc replica with a read cache, listening for
// the other replicas' changes.
type cachedReplica struct {
	products productv1connect.ProductServiceClient // as admin
	registry *prometheus.Registry
}

func startCachedReplica(t *testing.T, b *testBundle) *cachedReplica {
	t.Helper()
	store := productsvc.NewStore(b.pool, productsvc.NewOutbox(nil, nil, nil), "EUR", nil, nil)
	r := &cachedReplica{registry: prometheus.NewRegistry()}
	r.registry.MustRegister(store.EnableReadCache(productsvc.ReadCacheConfig{MB: 1, TTL: time.Minute}, nil)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); store.ListenForChanges(ctx, b.pool.Config().ConnString()) }()
	t.Cleanup(func() { cancel(); <-done })
	cfg := shoptest.ServerConfig(t, b.pool.Ping)
	srv := server.New(cfg)
	productsvc.Mount(srv, server.HandlerOptions(cfg), shoptest.Verifier(t, b.iss), store)
	url := shoptest.Serve(t, srv)
	p := shoptest.ConnectJSON()
	r.products = productv1connect.NewProductServiceClient(p.Client, url, p.ClientOptions(b.tokens["admin"])...)
	return r
}

func (r *cachedReplica) get(t *testing.T, id string) (*productv1.Product, error) {
	t.Helper()
	resp, err := r.products.GetProduct(context.Background(), connect.NewRequest(&productv1.GetProductRequest{Id: id}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Product, nil
}

// lookups reads productsvc_read_cache_lookups_total{kind, result}.
func (r *cachedReplica) lookups(kind, result string) float64 {
	families, _ := r.registry.Gather()
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// eventually polls get until ok holds for its answer, and returns how long
// that took; it fails t after 5 s.
func (r *cachedReplica) eventually(t *testing.T, id, what string, ok func(*productv1.Product, error) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if ok(r.get(t, id)) {
			return time.Since(start)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("after 5 s: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func served(r *cachedReplica) func(*productv1.Product, error) bool {
	return func(*productv1.Product, error) bool { return r.lookups("product", "hit") > 0 }
}

// Two replicas with read caches: each serves GetProduct from memory (a
// change made behind the services' backs stays unseen), sees its own
// writes at once, and drops what the other replica changes within
// moments (the delay is printed); a replica whose listener lost its
// connection forgets everything it cached.
func TestReadCacheAcrossReplicas(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a, c := startCachedReplica(t, b), startCachedReplica(t, b)
	cat := b.createCategory(t, "Lamps")
	lamp := b.createProduct(t, cat.Id, "LAMP-1", "Lamp", 1000)
	a.eventually(t, lamp.Id, "replica a's cache never served", served(a))
	c.eventually(t, lamp.Id, "replica c's cache never served", served(c))

	if _, err := b.pool.Exec(context.Background(), "UPDATE products SET name = 'Behind their backs' WHERE id = $1", lamp.Id); err != nil {
		t.Fatal(err)
	}
	if p, _ := c.get(t, lamp.Id); p.GetName() != "Lamp" {
		t.Fatalf("a cached product was read from the database: name %q", p.GetName())
	}

	// A change through replica a: seen by a at once, by c within moments.
	if _, err := a.products.UpdateProduct(context.Background(), connect.NewRequest(&productv1.UpdateProductRequest{
		Product: &productv1.Product{Id: lamp.Id, Price: eur(1250)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
	})); err != nil {
		t.Fatal(err)
	}
	if p, _ := a.get(t, lamp.Id); p.GetPrice().GetAmountMinor() != 1250 {
		t.Fatalf("replica a answered price %d right after its own change to 1250", p.GetPrice().GetAmountMinor())
	}
	took := c.eventually(t, lamp.Id, "replica c never saw the new price", func(p *productv1.Product, _ error) bool {
		return p.GetPrice().GetAmountMinor() == 1250
	})
	t.Logf("replica c dropped the product %v after replica a's change was answered", took)

	// A delete through replica c: gone from a within moments.
	if _, err := c.products.DeleteProduct(context.Background(), connect.NewRequest(&productv1.DeleteProductRequest{Id: lamp.Id})); err != nil {
		t.Fatal(err)
	}
	a.eventually(t, lamp.Id, "replica a kept serving a deleted product", func(_ *productv1.Product, err error) bool {
		return connect.CodeOf(err) == connect.CodeNotFound
	})

	// A listener that lost its connection: c forgets what it cached.
	chair := b.createProduct(t, cat.Id, "CHAIR-1", "Chair", 5000)
	hits := c.lookups("product", "hit")
	c.eventually(t, chair.Id, "replica c never served the chair from its cache", func(*productv1.Product, error) bool { return c.lookups("product", "hit") > hits })
	if _, err := b.pool.Exec(context.Background(), "UPDATE products SET name = 'Unannounced' WHERE id = $1", chair.Id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", productsvc.ChangesListener); err != nil {
		t.Fatal(err)
	}
	c.eventually(t, chair.Id, "replica c kept its cache across a lost listener", func(p *productv1.Product, _ error) bool {
		return p.GetName() == "Unannounced"
	})
}

// A page of ListProducts is served from memory until any product changes
// on any replica: the other replica's change shows within moments.
func TestListCacheAcrossReplicas(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a, c := startCachedReplica(t, b), startCachedReplica(t, b)
	cat := b.createCategory(t, "Desks")
	desk := b.createProduct(t, cat.Id, "DESK-1", "Oak desk", 20000)
	page := func(r *cachedReplica) []*productv1.Product {
		t.Helper()
		resp, err := r.products.ListProducts(context.Background(), connect.NewRequest(&productv1.ListProductsRequest{Query: new("oak"), PageSize: 10}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg.GetProducts()
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.lookups("list", "hit") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("replica c never served a page from its cache")
		}
		page(c)
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := b.pool.Exec(context.Background(), "UPDATE products SET price_minor = 1 WHERE id = $1", desk.Id); err != nil {
		t.Fatal(err)
	}
	if got := page(c); len(got) != 1 || got[0].GetPrice().GetAmountMinor() != 20000 {
		t.Fatalf("a cached page was read again from the database: %v", got)
	}

	if _, err := a.products.CreateProduct(context.Background(), connect.NewRequest(&productv1.CreateProductRequest{
		Sku: "CHAIR-1", Name: "Oak chair", CategoryId: cat.Id, Price: eur(9000),
	})); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for len(page(c)) != 2 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("replica c kept serving a page without the chair replica a created")
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("replica c dropped its pages %v after another replica's CreateProduct was answered", time.Since(start))
	if got := page(a); len(got) != 2 {
		t.Fatalf("replica a: %d products, want 2", len(got))
	}
}
