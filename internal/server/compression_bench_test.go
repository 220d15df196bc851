package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// cartLike is a ~2 KB message shaped like a cart response: lines of names,
// ids and prices.
func cartLike(tb testing.TB) *structpb.Struct {
	tb.Helper()
	var lines []any
	for i := range 11 {
		lines = append(lines, map[string]any{
			"productId": fmt.Sprintf("0193a5c2-%04x-7c3e-9a1b-5d2e8f4c%04x", i, i*7),
			"name":      fmt.Sprintf("Product number %d", i),
			"unitPrice": map[string]any{"currencyCode": "EUR", "amountMinor": 1000 + i*13},
			"quantity":  i%3 + 1,
		})
	}
	msg, err := structpb.NewStruct(map[string]any{"items": lines})
	if err != nil {
		tb.Fatal(err)
	}
	return msg
}

// compressionVariant is one way to serve gzip.
type compressionVariant struct {
	name     string
	level    int
	minBytes int
}

var compressionVariants = []compressionVariant{
	{"default-level", gzip.DefaultCompression, 1024}, // before: connect's gzip at its default level
	{"best-speed", gzip.BestSpeed, 1024},
	{"min-4KiB", gzip.DefaultCompression, 4096}, // a 2 KB response is not compressed
}

// BenchmarkCompression calls a handler answering a ~2 KB message over real
// HTTP (Connect protocol, the client accepting gzip), once per variant in
// the same loop, and reports each variant's wall time (X/default-level) and
// process CPU time, client and server together (X-cpu/default-level), per
// call relative to gzip at the default level.
func BenchmarkCompression(b *testing.B) {
	msg := cartLike(b)
	b.Logf("message: %d bytes", proto.Size(msg))
	clients := map[string]*connect.Client[emptypb.Empty, structpb.Struct]{}
	for _, v := range compressionVariants {
		mux := http.NewServeMux()
		mux.Handle("/bench.v1.Bench/Get", connect.NewUnaryHandler("/bench.v1.Bench/Get",
			func(context.Context, *connect.Request[emptypb.Empty]) (*connect.Response[structpb.Struct], error) {
				return connect.NewResponse(msg), nil
			},
			connect.WithCompressMinBytes(v.minBytes),
			connect.WithCompression("gzip", boundedGzip(DefaultReadMaxBytes), gzipWriters(v.level)),
		))
		srv := httptest.NewServer(mux)
		defer srv.Close()
		clients[v.name] = connect.NewClient[emptypb.Empty, structpb.Struct](srv.Client(), srv.URL+"/bench.v1.Bench/Get")
	}
	ctx := context.Background()
	spent, cpu := map[string]time.Duration{}, map[string]time.Duration{}
	n := 0
	for b.Loop() {
		for _, v := range compressionVariants {
			t0, c0 := time.Now(), processCPU(b)
			if _, err := clients[v.name].CallUnary(ctx, connect.NewRequest(&emptypb.Empty{})); err != nil {
				b.Fatal(err)
			}
			spent[v.name] += time.Since(t0)
			cpu[v.name] += processCPU(b) - c0
		}
		n++
	}
	base, baseCPU := spent[compressionVariants[0].name], cpu[compressionVariants[0].name]
	b.ReportMetric(float64(base.Nanoseconds())/float64(n), "default-level-ns/call")
	for _, v := range compressionVariants[1:] {
		b.ReportMetric(float64(spent[v.name])/float64(base), v.name+"/default-level")
		b.ReportMetric(float64(cpu[v.name])/float64(baseCPU), v.name+"-cpu/default-level")
	}
}

// BenchmarkGzipResponse is the server's share alone: compressing one ~2 KB
// response with a pooled writer, as connect-go does (Reset, Write, Close,
// Reset), at each level; bytes/op is the compressed size.
func BenchmarkGzipResponse(b *testing.B) {
	data, err := proto.Marshal(cartLike(b))
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range compressionVariants[:2] {
		b.Run(v.name, func(b *testing.B) {
			w := gzipWriters(v.level)()
			var dst bytes.Buffer
			for b.Loop() {
				dst.Reset()
				w.Reset(&dst)
				if _, err := w.Write(data); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				w.Reset(&bytes.Buffer{})
			}
			b.ReportMetric(float64(dst.Len()), "compressed-bytes")
			b.ReportMetric(float64(len(data)), "raw-bytes")
		})
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
