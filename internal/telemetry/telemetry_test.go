package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/telemetry"
)

const procedure = "/test.v1.TestService/Ping"

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serve serves a Ping handler with tel's handler options that answers
// with fail's error when set, as a user (or as nobody for anonymous).
func serve(t *testing.T, tel *telemetry.Telemetry, id *auth.Identity, fail error) string {
	t.Helper()
	h := connect.NewUnaryHandler(procedure, func(ctx context.Context, _ *connect.Request[emptypb.Empty]) (*connect.Response[emptypb.Empty], error) {
		if fail != nil {
			return nil, fail
		}
		return connect.NewResponse(&emptypb.Empty{}), nil
	}, tel.HandlerOptions()...)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id != nil {
			r = r.WithContext(auth.WithIdentity(r.Context(), id))
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func ping(t *testing.T, url string, opts ...connect.ClientOption) error {
	t.Helper()
	c := connect.NewClient[emptypb.Empty, emptypb.Empty](http.DefaultClient, url+procedure, opts...)
	req := connect.NewRequest(&emptypb.Empty{})
	req.Header().Set("Authorization", "Bearer secret-token-value")
	_, err := c.CallUnary(context.Background(), req)
	return err
}

func TestOneLogLinePerRPCWithoutSecrets(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	log, err := telemetry.NewLogger(&logs, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	tel := telemetry.ForTest("testsvc", nil, log)
	user := &auth.Identity{Subject: "alice-user-id-123"}
	ok := serve(t, tel, user, nil)
	failing := serve(t, tel, nil, connect.NewError(connect.CodeNotFound, errors.New("no such thing")))
	if err := ping(t, ok); err != nil {
		t.Fatal(err)
	}
	if err := ping(t, failing); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("ping: %v, want NotFound", err)
	}

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines for 2 RPCs, want 2:\n%s", len(lines), logs.String())
	}
	want := []struct{ code, caller string }{{"ok", "user"}, {"not_found", "anonymous"}}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i, err, line)
		}
		if rec["msg"] != "rpc" || rec["procedure"] != procedure || rec["code"] != want[i].code || rec["caller"] != want[i].caller {
			t.Errorf("line %d = %s; want msg rpc, procedure %s, code %s, caller %s", i, line, procedure, want[i].code, want[i].caller)
		}
		if _, ok := rec["duration"]; !ok {
			t.Errorf("line %d has no duration: %s", i, line)
		}
		if id, _ := rec["trace_id"].(string); len(id) != 32 {
			t.Errorf("line %d has trace_id %q, want 32 hex digits (ids are made even with tracing off)", i, rec["trace_id"])
		}
	}
	for _, secret := range []string{"secret-token-value", "Bearer", "alice-user-id-123", "Authorization"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the logs contain %q:\n%s", secret, logs.String())
		}
	}
}

func TestTraceContinuesFromCallerThroughClient(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	tel := telemetry.ForTest("testsvc", spans, nil)
	url := serve(t, tel, nil, nil)
	if err := ping(t, url, tel.ClientOptions()...); err != nil {
		t.Fatal(err)
	}
	got := spans.GetSpans()
	if len(got) != 2 {
		t.Fatalf("%d spans, want the client's and the server's", len(got))
	}
	if got[0].SpanContext.TraceID() != got[1].SpanContext.TraceID() {
		t.Errorf("client and server spans are in traces %s and %s, want one", got[0].SpanContext.TraceID(), got[1].SpanContext.TraceID())
	}
}

func TestTraceparentRoundTrip(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc := telemetry.SpanContextOf(tp)
	if !sc.IsValid() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !sc.IsSampled() {
		t.Fatalf("SpanContextOf(%q) = %v", tp, sc)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
		if telemetry.SpanContextOf(bad).IsValid() {
			t.Errorf("SpanContextOf(%q) is valid, want invalid", bad)
		}
	}
	spans := tracetest.NewInMemoryExporter()
	tel := telemetry.ForTest("testsvc", spans, nil)
	ctx, span := telemetry.StartCaused(context.Background(), tel.Tracer("test"), "work", []string{tp, tp, "bad"})
	got := telemetry.Traceparent(ctx)
	span.End()
	if !strings.HasPrefix(got, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || got == tp {
		t.Errorf("Traceparent inside a span caused by %s = %q, want a new span in that trace", tp, got)
	}
	if links := spans.GetSpans()[0].Links; len(links) != 1 {
		t.Errorf("the span has %d links, want 1 (one per distinct cause)", len(links))
	}
	if telemetry.Traceparent(context.Background()) != "" {
		t.Error("Traceparent outside any span is not empty")
	}
}

func TestAdminServesMetricsAndPprof(t *testing.T) {
	t.Parallel()
	tel, err := telemetry.New(telemetry.Config{AdminAddr: "127.0.0.1:0"}, "testsvc", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Close()
	url := serve(t, tel, nil, nil)
	if err := ping(t, url); err != nil {
		t.Fatal(err)
	}
	base := "http://" + tel.AdminAddr()
	body := get(t, base+"/metrics")
	for _, want := range []string{"go_goroutines", "process_cpu_seconds_total", `rpc_server_call_duration_seconds_count{`, `rpc_method="test.v1.TestService/Ping"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if body := get(t, base+"/debug/pprof/"); !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ does not list profiles:\n%s", body)
	}
	if got := telemetry.Sample(tel.Registry, "go_goroutines"); got == "" {
		t.Error("Sample finds no go_goroutines")
	}
}

func TestConfigRefusesNonsense(t *testing.T) {
	t.Parallel()
	for _, c := range []telemetry.Config{
		{TraceExporter: "jaeger"}, {TraceSampleRatio: 2}, {LogFormat: "xml"}, {LogLevel: "loud"},
	} {
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "--") {
			t.Errorf("Validate(%+v) = %v, want an error naming the flag", c, err)
		}
	}
	if _, err := telemetry.New(telemetry.Config{AdminAddr: "256.0.0.1:1"}, "x", io.Discard); err == nil || !strings.Contains(err.Error(), "--admin-addr") {
		t.Errorf("a bad admin address: %v, want an error naming --admin-addr", err)
	}
}

func TestTextLogsForDevelopment(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	log, err := telemetry.NewLogger(&out, "text", "debug")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hello", "n", 1)
	if !strings.Contains(out.String(), "level=DEBUG msg=hello n=1") {
		t.Errorf("text log: %q", out.String())
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return string(b)
}

func TestQueryNameIsTheSqlcName(t *testing.T) {
	t.Parallel()
	for stmt, want := range map[string]string{
		"-- name: GetCart :many\nSELECT * FROM cart_items": "GetCart",
		"  select 1":                             "SELECT",
		"-- a comment\nINSERT INTO t VALUES (1)": "INSERT",
	} {
		if got := telemetry.QueryName(stmt); got != want {
			t.Errorf("QueryName(%q) = %q, want %q", stmt, got, want)
		}
	}
	if telemetry.ForTest("x", nil, nil).QueryTracer() != nil {
		t.Error("QueryTracer with tracing off is not nil")
	}
	if telemetry.ForTest("x", tracetest.NewInMemoryExporter(), nil).QueryTracer() == nil {
		t.Error("QueryTracer with spans recorded is nil")
	}
}
