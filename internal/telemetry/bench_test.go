package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/decoupledshop/shop/internal/telemetry"
)

// BenchmarkRPCOverhead measures what the handler options add to one unary
// RPC with tracing off (the default): the same handler is called over
// loopback HTTP alternately with and without them. with/without is the
// ratio, overhead-ns/op the difference; the log line goes to io.Discard as
// JSON, so its encoding is counted.
func BenchmarkRPCOverhead(b *testing.B) {
	tel, err := telemetry.New(telemetry.Config{}, "bench", io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	handler := func(context.Context, *connect.Request[emptypb.Empty]) (*connect.Response[emptypb.Empty], error) {
		return connect.NewResponse(&emptypb.Empty{}), nil
	}
	mux := http.NewServeMux()
	mux.Handle("/with"+procedure, connect.NewUnaryHandler("/with"+procedure, handler, tel.HandlerOptions()...))
	mux.Handle("/without"+procedure, connect.NewUnaryHandler("/without"+procedure, handler))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	with := connect.NewClient[emptypb.Empty, emptypb.Empty](srv.Client(), srv.URL+"/with"+procedure)
	without := connect.NewClient[emptypb.Empty, emptypb.Empty](srv.Client(), srv.URL+"/without"+procedure)
	ctx := context.Background()
	req := connect.NewRequest(&emptypb.Empty{})
	var tWith, tWithout time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		if _, err := with.CallUnary(ctx, req); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := without.CallUnary(ctx, req); err != nil {
			b.Fatal(err)
		}
		tWith, tWithout = tWith+t1.Sub(t0), tWithout+time.Since(t1)
		n++
	}
	b.ReportMetric(float64(tWith)/float64(tWithout), "with/without")
	b.ReportMetric(float64((tWith-tWithout).Nanoseconds())/float64(n), "overhead-ns/op")
}

// BenchmarkInterceptors is the in-process cost of the handler interceptors
// around a handler that does nothing, tracing off: a metric record, a
// non-recording span with a fresh trace id, and a JSON log line (to
// io.Discard).
func BenchmarkInterceptors(b *testing.B) {
	tel, err := telemetry.New(telemetry.Config{}, "bench", io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	next := connect.UnaryFunc(func(context.Context, connect.AnyRequest) (connect.AnyResponse, error) {
		return connect.NewResponse(&emptypb.Empty{}), nil
	})
	ics := tel.Interceptors()
	for i := len(ics) - 1; i >= 0; i-- {
		next = ics[i].WrapUnary(next)
	}
	ctx := context.Background()
	req := connect.NewRequest(&emptypb.Empty{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := next(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
