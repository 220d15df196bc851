package productsvc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// BenchmarkGetProduct measures GetProduct over real HTTP (Connect, binary
// protobuf) against a real database, next to a baseline measured in the same
// loop: a gRPC health check, which crosses the same server stack and makes
// one database round trip (the readiness ping). get/ping is the ratio;
// get-ns/op is GetProduct alone.
func BenchmarkGetProduct(b *testing.B) {
	bundle := setup(b)
	cat := bundle.createCategory(b, "Bench")
	p := bundle.createProduct(b, cat.Id, "BENCH-1", "Bench item", 100)
	proto := shoptest.Protocols()[1] // connect+proto
	client := bundle.products("", proto)
	health := grpchealth.NewClient(proto.Client, bundle.url)
	ctx := context.Background()
	req := connect.NewRequest(&productv1.GetProductRequest{Id: p.Id})
	var get, ping time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		if _, err := client.GetProduct(ctx, req); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := health.Check(ctx, &grpchealth.CheckRequest{}); err != nil {
			b.Fatal(err)
		}
		get, ping = get+t1.Sub(t0), ping+time.Since(t1)
		n++
	}
	b.ReportMetric(float64(get.Nanoseconds())/float64(n), "get-ns/op")
	b.ReportMetric(float64(get)/float64(ping), "get/ping")
}

// BenchmarkBatchGetProducts measures one BatchGetProducts of 100 ids (what a
// full cart costs the catalog) against 100 sequential GetProducts in the
// same run: batch/sequential is the saving of the one-query batch.
func BenchmarkBatchGetProducts(b *testing.B) {
	bundle := setup(b)
	cat := bundle.createCategory(b, "Bench")
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = bundle.createProduct(b, cat.Id, fmt.Sprintf("BENCH-%03d", i), "Bench item", 100).Id
	}
	client := bundle.products("", shoptest.Protocols()[1])
	ctx := context.Background()
	batchReq := connect.NewRequest(&productv1.BatchGetProductsRequest{Ids: ids})
	var batch, sequential time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		resp, err := client.BatchGetProducts(ctx, batchReq)
		if err != nil || len(resp.Msg.Products) != 100 {
			b.Fatalf("batch: %v", err)
		}
		t1 := time.Now()
		for _, id := range ids {
			if _, err := client.GetProduct(ctx, connect.NewRequest(&productv1.GetProductRequest{Id: id})); err != nil {
				b.Fatal(err)
			}
		}
		batch, sequential = batch+t1.Sub(t0), sequential+time.Since(t1)
		n++
	}
	b.ReportMetric(float64(batch.Nanoseconds())/float64(n), "batch-ns/op")
	b.ReportMetric(float64(batch)/float64(sequential), "batch/sequential")
}
