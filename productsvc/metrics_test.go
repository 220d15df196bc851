package productsvc_test

import (
	"context"
	"strconv"
	"testing"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/internal/telemetry"
	"github.com/decoupledshop/shop/productsvc"
)

// TestBacklogIsReadAtScrapeTime: the outbox depth, the age of its oldest
// event and the dead letters are read from the database per subscriber
// when scraped; a configured subscriber with nothing waiting reads 0.
func TestBacklogIsReadAtScrapeTime(t *testing.T) {
	t.Parallel()
	b := eventsSetup(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(productsvc.NewBacklogCollector(b.pool, []string{"cartsvc", "search"}))
	sample := func(name, sub string) float64 {
		t.Helper()
		v, err := strconv.ParseFloat(telemetry.Sample(reg, name+`{subscriber="`+sub+`"}`), 64)
		if err != nil {
			t.Fatalf("%s{subscriber=%q}: %v", name, sub, err)
		}
		return v
	}
	if got := sample("productsvc_outbox_depth", "cartsvc"); got != 0 {
		t.Fatalf("depth before any change = %g, want 0", got)
	}

	p := shoptest.ConnectJSON()
	cats := productv1connect.NewCategoryServiceClient(p.Client, b.url, p.ClientOptions(b.admin)...)
	for _, name := range []string{"Shoes", "Hats"} {
		if _, err := cats.CreateCategory(context.Background(), connect.NewRequest(&productv1.CreateCategoryRequest{Name: name})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.pool.Exec(context.Background(), `UPDATE outbox SET create_time = create_time - interval '90 seconds'
		WHERE event_id = (SELECT event_id FROM outbox ORDER BY create_time LIMIT 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(context.Background(), `INSERT INTO outbox_dead
		SELECT gen_random_uuid(), subscriber, event_id, type, aggregate_id, aggregate_version, occurred_at, event, attempts, 'test', now()
		FROM outbox LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if got := sample("productsvc_outbox_depth", "cartsvc"); got != 2 {
		t.Errorf("depth after two changes = %g, want 2", got)
	}
	if got := sample("productsvc_outbox_oldest_age_seconds", "cartsvc"); got < 90 || got > 600 {
		t.Errorf("oldest age = %g s, want about 90", got)
	}
	if got := sample("productsvc_dead_letters", "cartsvc"); got != 1 {
		t.Errorf("dead letters = %g, want 1", got)
	}
	for _, name := range []string{"productsvc_outbox_depth", "productsvc_outbox_oldest_age_seconds", "productsvc_dead_letters"} {
		if got := sample(name, "search"); got != 0 {
			t.Errorf("%s for an idle subscriber = %g, want 0", name, got)
		}
	}
}
