package cartsvc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
)

// BenchmarkDeliverEvents measures a price-change storm arriving at
// cartsvc: each iteration delivers one batch of 256 ProductChanged events
// (256 products, each on the lines of 4 carts and 1 wishlist) over real
// HTTP, and, interleaved in the same loop, the baseline: 256 raw
// single-row INSERTs by 8 workers on the same database. events/insert is
// events applied per second ÷ raw INSERTs per second (higher is better).
func BenchmarkDeliverEvents(b *testing.B) {
	bundle := setup(b)
	ctx := context.Background()
	const products, cartsPerProduct = 256, 4
	ids := make([]string, products)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	for u := range 64 {
		user := fmt.Sprintf("bench%02d", u)
		bundle.exec(b, "INSERT INTO carts (user_id, create_time, update_time) VALUES ($1, now(), now())", user)
		bundle.exec(b, "INSERT INTO wishlists (user_id, create_time, update_time) VALUES ($1, now(), now())", user)
	}
	for i, id := range ids {
		for c := range cartsPerProduct {
			user := fmt.Sprintf("bench%02d", (i+c*16)%64)
			bundle.exec(b, `INSERT INTO cart_items (user_id, product_id, quantity, name, unit_price_minor, added_unit_price_minor,
				currency_code, product_version, add_time, update_time) VALUES ($1, $2, 1, 'Thing', 100, 100, 'EUR', 1, now(), now())`, user, id)
		}
		bundle.exec(b, `INSERT INTO wishlist_items (user_id, product_id, name, price_minor, currency_code, product_version, add_time)
			VALUES ($1, $2, 'Thing', 100, 'EUR', 1, now())`, fmt.Sprintf("bench%02d", i%64), id)
	}
	raw := newRawInserts(b, bundle.cartPool)
	client := sink(bundle.cartURL, bundle.tokens["service"])
	version := int64(1)
	var events, inserts time.Duration
	for b.Loop() {
		version++
		batch := make([]*eventsv1.Event, products)
		for i, id := range ids {
			batch[i] = changed(id, version, "Thing", 100+version)
		}
		t0 := time.Now()
		resp, err := client.DeliverEvents(ctx, connect.NewRequest(&eventsv1.DeliverEventsRequest{Events: batch}))
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range resp.Msg.Results {
			if r.Status != accepted {
				b.Fatalf("event %s: %v %s", r.EventId, r.Status, r.Reason)
			}
		}
		events += time.Since(t0)
		inserts += raw.run(b, products)
	}
	n := float64(version-1) * products
	b.ReportMetric(n/events.Seconds(), "events/s")
	b.ReportMetric(n/inserts.Seconds(), "inserts/s")
	b.ReportMetric(inserts.Seconds()/events.Seconds(), "events/insert")
}
