package cartsvc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// BenchmarkGetCart measures GetCart for a cart of 20 lines over real HTTP
// (Connect, binary protobuf), with product data from the cache (the hot
// path), next to a baseline measured in the same loop: a gRPC health check
// through the same server stack, one database round trip. getcart/ping is
// the ratio; getcart-ns/op is GetCart alone; catalog-calls/op counts
// BatchGetProducts calls per GetCart (0 when served from the cache).
func BenchmarkGetCart(b *testing.B) {
	bundle := setup(b)
	for i := range 20 {
		bundle.add(b, shoptest.Alice, bundle.createProduct(b, fmt.Sprintf("Bench %02d", i), int64(100+i)), 1)
	}
	client := bundle.carts(shoptest.Alice)
	health := grpchealth.NewClient(shoptest.Protocols()[1].Client, bundle.cartURL)
	ctx := context.Background()
	req := connect.NewRequest(&cartv1.GetCartRequest{})
	if _, err := client.GetCart(ctx, req); err != nil { // warm the cache
		b.Fatal(err)
	}
	callsBefore := bundle.front.calls.Load()
	var get, ping time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		resp, err := client.GetCart(ctx, req)
		if err != nil || len(resp.Msg.Cart.Items) != 20 || resp.Msg.Cart.Stale {
			b.Fatalf("GetCart: %v", err)
		}
		t1 := time.Now()
		if _, err := health.Check(ctx, &grpchealth.CheckRequest{}); err != nil {
			b.Fatal(err)
		}
		get, ping = get+t1.Sub(t0), ping+time.Since(t1)
		n++
	}
	b.ReportMetric(float64(get.Nanoseconds())/float64(n), "getcart-ns/op")
	b.ReportMetric(float64(get)/float64(ping), "getcart/ping")
	b.ReportMetric(float64(bundle.front.calls.Load()-callsBefore)/float64(n), "catalog-calls/op")
}
