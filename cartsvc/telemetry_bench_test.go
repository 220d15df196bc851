package cartsvc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/cartsvc"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	"github.com/decoupledshop/shop/internal/server"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// BenchmarkGetCartTelemetryCost measures what telemetry (otelconnect
// metrics and spans with tracing off, the request log line) adds to
// GetCart: the same cart of 20 lines is read alternately through the
// bundle's server (with telemetry, as Run wires it) and through a second
// server over the same service without it. with/without is the ratio;
// overhead-ns/op the difference per call.
func BenchmarkGetCartTelemetryCost(b *testing.B) {
	bundle := setup(b)
	for i := range 20 {
		bundle.add(b, shoptest.Alice, bundle.createProduct(b, fmt.Sprintf("Bench %02d", i), int64(100+i)), 1)
	}
	plain := server.New(bundle.ccfg)
	cartsvc.Mount(plain, server.HandlerOptions(bundle.ccfg), bundle.verifier, bundle.svc)
	plainURL := shoptest.Serve(b, plain)
	p := protocol(nil)
	with := bundle.carts(shoptest.Alice)
	without := cartv1connect.NewCartServiceClient(p.Client, plainURL, p.ClientOptions(bundle.tokens[shoptest.Alice])...)
	ctx := context.Background()
	req := connect.NewRequest(&cartv1.GetCartRequest{})
	for _, c := range []cartv1connect.CartServiceClient{with, without} { // warm up
		if _, err := c.GetCart(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	var tWith, tWithout time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		if _, err := with.GetCart(ctx, req); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := without.GetCart(ctx, req); err != nil {
			b.Fatal(err)
		}
		tWith, tWithout = tWith+t1.Sub(t0), tWithout+time.Since(t1)
		n++
	}
	b.ReportMetric(float64(tWith)/float64(tWithout), "with/without")
	b.ReportMetric(float64((tWith-tWithout).Nanoseconds())/float64(n), "overhead-ns/op")
}
