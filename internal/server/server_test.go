package server_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/decoupledshop/shop/internal/server"
)

func TestOnePortServesConnectGRPCAndGRPCWeb(t *testing.T) {
	t.Parallel()
	b := setup(t, server.Config{}, nil)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			client := newTestClient[wrapperspb.BytesValue, wrapperspb.BytesValue](b, tr, echoProcedure)
			res, err := client.CallUnary(context.Background(), connect.NewRequest(wrapperspb.Bytes([]byte("hello"))))
			if err != nil {
				t.Fatalf("Echo: %v", err)
			}
			if got := string(res.Msg.GetValue()); got != "hello" {
				t.Errorf("Echo returned %q, want %q", got, "hello")
			}
			if got := res.Header().Get("X-Http-Proto"); got != tr.proto {
				t.Errorf("server saw %s, want %s", got, tr.proto)
			}
			if got := res.Header().Get("X-Peer-Protocol"); got != tr.peer {
				t.Errorf("handler saw protocol %q, want %q", got, tr.peer)
			}
		})
	}
}

func TestMessagesUpToReadMaxBytesAreAccepted(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	b := setup(t, server.Config{ReadMaxBytes: limit}, nil)
	for _, tr := range binaryTransports() {
		for _, gzipped := range []bool{false, true} {
			name := tr.name
			var extra []connect.ClientOption
			if gzipped {
				name += "/gzip"
				extra = append(extra, connect.WithSendGzip(), connect.WithCompressMinBytes(0))
			}
			t.Run(name, func(t *testing.T) {
				client := newTestClient[wrapperspb.BytesValue, wrapperspb.BytesValue](b, tr, echoProcedure, extra...)
				if _, err := client.CallUnary(context.Background(), connect.NewRequest(bytesOfSize(t, limit))); err != nil {
					t.Errorf("message of exactly ReadMaxBytes (%d): got %v, want success", limit, err)
				}
				_, err := client.CallUnary(context.Background(), connect.NewRequest(bytesOfSize(t, limit+1)))
				if got := connect.CodeOf(err); got != connect.CodeResourceExhausted {
					t.Errorf("message of ReadMaxBytes+1: got %v (code %v), want ResourceExhausted", err, got)
				}
			})
		}
	}
}

func TestGzipBombIsRejected(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	b := setup(t, server.Config{ReadMaxBytes: limit}, nil)
	bomb := gzipBomb(t, 16<<20) // inflates to 16 MiB
	if len(bomb) >= limit {
		t.Fatalf("premise: the bomb is %d bytes, want fewer than ReadMaxBytes (%d)", len(bomb), limit)
	}
	for _, tc := range []struct {
		name   string
		client *http.Client
		header http.Header
		body   []byte
		tooBig func(res *http.Response, body []byte) bool
	}{
		{
			name:   "connect",
			client: b.http1,
			header: http.Header{"Content-Type": {"application/proto"}, "Content-Encoding": {"gzip"}},
			body:   bomb,
			tooBig: func(res *http.Response, body []byte) bool {
				return res.StatusCode == http.StatusTooManyRequests && bytes.Contains(body, []byte(`"code":"resource_exhausted"`))
			},
		},
		{
			name:   "grpc",
			client: b.h2c,
			header: http.Header{"Content-Type": {"application/grpc"}, "Grpc-Encoding": {"gzip"}, "Te": {"trailers"}},
			body:   envelope(bomb),
			tooBig: func(res *http.Response, _ []byte) bool {
				return res.Header.Get("Grpc-Status") == "8" || res.Trailer.Get("Grpc-Status") == "8"
			},
		},
		{
			name:   "grpcweb",
			client: b.http1,
			header: http.Header{"Content-Type": {"application/grpc-web+proto"}, "Grpc-Encoding": {"gzip"}},
			body:   envelope(bomb),
			tooBig: func(res *http.Response, body []byte) bool {
				return res.Header.Get("Grpc-Status") == "8" || bytes.Contains(body, []byte("grpc-status:8"))
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, b.baseURL+echoProcedure, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tc.header
			res, err := tc.client.Do(req)
			if err != nil {
				t.Fatalf("POST bomb: %v", err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			if !tc.tooBig(res, body) {
				t.Errorf("gzip bomb: got %d %v %q, want ResourceExhausted", res.StatusCode, res.Header, body)
			}
		})
	}
}

// gzipBomb returns a small gzip stream (concatenated members) that inflates
// to size zero bytes.
func gzipBomb(t *testing.T, size int) []byte {
	t.Helper()
	const chunk = 64 << 10
	var member bytes.Buffer
	zw, err := gzip.NewWriterLevel(&member, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(make([]byte, chunk)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.Repeat(member.Bytes(), size/chunk)
}

// envelope frames a compressed message for gRPC and gRPC-Web.
func envelope(compressed []byte) []byte {
	prefix := []byte{1, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(prefix[1:], uint32(len(compressed)))
	return append(prefix, compressed...)
}

func TestRawBodiesAreCappedAboveReadMaxBytes(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	const bodyLimit = limit + 64<<10
	b := setup(t, server.Config{ReadMaxBytes: limit}, nil)
	for _, tc := range []struct {
		size int
		want int
	}{
		{bodyLimit, http.StatusOK},
		{bodyLimit + 1, http.StatusRequestEntityTooLarge},
	} {
		res, err := b.http1.Post(b.baseURL+rawPath, "application/octet-stream", bytes.NewReader(make([]byte, tc.size)))
		if err != nil {
			t.Fatalf("POST %d bytes: %v", tc.size, err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("POST %d bytes to a plain handler: status %d, want %d", tc.size, res.StatusCode, tc.want)
		}
	}
}

func TestHandlerDeadlinesAreCapped(t *testing.T) {
	t.Parallel()
	const maxDeadline = 5 * time.Second
	b := setup(t, server.Config{MaxDeadline: maxDeadline}, nil)
	for _, tr := range binaryTransports() {
		for _, tc := range []struct {
			name    string
			timeout time.Duration // 0: the client sends none
			want    time.Duration // upper bound on what the handler sees
		}{
			{"client asks 1h", time.Hour, maxDeadline},
			{"client sends none", 0, maxDeadline},
			{"client asks less", 2 * time.Second, 2 * time.Second},
		} {
			t.Run(tr.name+"/"+tc.name, func(t *testing.T) {
				ctx := context.Background()
				if tc.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.timeout)
					defer cancel()
				}
				client := newTestClient[emptypb.Empty, wrapperspb.Int64Value](b, tr, deadlineProcedure)
				res, err := client.CallUnary(ctx, connect.NewRequest(&emptypb.Empty{}))
				if err != nil {
					t.Fatalf("Deadline: %v", err)
				}
				remaining := time.Duration(res.Msg.GetValue())
				if remaining <= 0 || remaining > tc.want {
					t.Errorf("handler's deadline is %v away, want within (0, %v]", remaining, tc.want)
				}
			})
		}
	}
}

func TestErrorsAreMappedWithoutLeakingInternals(t *testing.T) {
	t.Parallel()
	b := setup(t, server.Config{}, nil)
	const secret = "secret internal detail"
	for _, tr := range binaryTransports() {
		for _, tc := range []struct {
			failure string
			code    connect.Code
			message string
			logged  bool // the original error is logged with the procedure
		}{
			{"invalid", connect.CodeInvalidArgument, "name: must not be empty", false},
			{"wrapped-not-found", connect.CodeNotFound, "product not found", false},
			{"connect", connect.CodeFailedPrecondition, "category still has products", false},
			{"own-deadline", connect.CodeDeadlineExceeded, context.DeadlineExceeded.Error(), false},
			{"deadline", connect.CodeUnavailable, "a dependency did not answer in time; retry later", true}, // not the request's own
			{"canceled", connect.CodeUnavailable, "a dependency's call was cut off; retry later", true},     // not the request's own
			{"secret", connect.CodeInternal, "internal error", true},
			{"internal-code", connect.CodeInternal, "internal error", true},
			{"upstream", connect.CodeInternal, "internal error", true},
			{"panic", connect.CodeInternal, "internal error", true},
			{"database-down", connect.CodeUnavailable, "database temporarily unavailable; retry later", true},
		} {
			t.Run(tr.name+"/"+tc.failure, func(t *testing.T) {
				client := newTestClient[wrapperspb.StringValue, emptypb.Empty](b, tr, failProcedure)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if tc.failure == "own-deadline" {
					ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
				}
				defer cancel()
				_, err := client.CallUnary(ctx, connect.NewRequest(wrapperspb.String(tc.failure)))
				ce, ok := errors.AsType[*connect.Error](err)
				if !ok {
					t.Fatalf("Fail(%s): got %v, want a *connect.Error", tc.failure, err)
				}
				if ce.Code() != tc.code || ce.Message() != tc.message {
					t.Errorf("Fail(%s): got %v %q, want %v %q", tc.failure, ce.Code(), ce.Message(), tc.code, tc.message)
				}
				if strings.Contains(ce.Error(), secret) || strings.Contains(ce.Error(), "db-7") {
					t.Errorf("Fail(%s): client-visible error %q leaks internals", tc.failure, ce.Error())
				}
			})
		}
	}
	logs := b.logs.String()
	for _, want := range []string{
		"procedure=" + failProcedure,
		"pq: " + secret,
		"rpc handler panicked",
		"unexpected error",
		`level=WARN msg="rpc failed: dependency unavailable"`,
		"administrator command on db-7 (SQLSTATE 57P01)",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q; logs:\n%s", want, logs)
		}
	}
}

func TestHealthzReadyzAndGRPCHealth(t *testing.T) {
	t.Parallel()
	var readyErr atomicError
	var checkHadDeadline atomic.Bool
	b := setup(t, server.Config{Ready: func(ctx context.Context) error {
		_, ok := ctx.Deadline()
		checkHadDeadline.Store(ok)
		return readyErr.Load()
	}}, nil)
	health := grpchealth.NewClient(b.h2c, b.baseURL, connect.WithGRPC())
	check := func(service string) (grpchealth.Status, error) {
		res, err := health.Check(context.Background(), &grpchealth.CheckRequest{Service: service})
		if err != nil {
			return 0, err
		}
		return res.Status, nil
	}

	if status, body := b.get(t, "/healthz"); status != http.StatusOK {
		t.Errorf("/healthz: %d %q, want 200", status, body)
	}
	if status, body := b.get(t, "/readyz"); status != http.StatusOK {
		t.Errorf("/readyz while the check passes: %d %q, want 200", status, body)
	}
	if !checkHadDeadline.Load() {
		t.Errorf("readiness check ran without a deadline, want its 1s timeout")
	}
	for _, service := range []string{"", testService} {
		if status, err := check(service); err != nil || status != grpchealth.StatusServing {
			t.Errorf("health Check(%q) while ready: %v, %v; want serving", service, status, err)
		}
	}
	if _, err := check("no.such.Service"); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("health Check of an unknown service: %v, want NotFound", err)
	}
	watch := <-health.Watch(context.Background(), &grpchealth.CheckRequest{})
	if connect.CodeOf(watch.Err) != connect.CodeUnimplemented {
		t.Errorf("health Watch: %+v, want Unimplemented", watch)
	}

	readyErr.Store(errors.New("dial tcp db-7.internal:5432: connection refused"))
	status, body := b.get(t, "/readyz")
	if status != http.StatusServiceUnavailable {
		t.Errorf("/readyz while the check fails: %d %q, want 503", status, body)
	}
	if strings.Contains(body, "db-7") {
		t.Errorf("/readyz body %q leaks the check's error", body)
	}
	if status, err := check(""); err != nil || status != grpchealth.StatusNotServing {
		t.Errorf("health Check while not ready: %v, %v; want not serving", status, err)
	}
	if status, _ := b.get(t, "/healthz"); status != http.StatusOK {
		t.Errorf("/healthz while not ready: %d, want 200 (liveness does not depend on readiness)", status)
	}
}

func TestMetricsAreNotOnTheAPIPort(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	b := setup(t, server.Config{Registry: reg}, nil)
	if b.srv.Registry() != reg {
		t.Fatal("Registry() is not Config.Registry")
	}
	if status, _ := b.get(t, "/metrics"); status != http.StatusNotFound {
		t.Fatalf("/metrics on the API port: %d, want 404 (metrics belong on the admin listener)", status)
	}
}

func TestReflectionListsRegisteredServices(t *testing.T) {
	t.Parallel()
	b := setup(t, server.Config{}, func(s *server.Server) { s.RegisterServiceNames("test.v1.OtherService") })
	for _, version := range []string{"v1", "v1alpha"} {
		t.Run(version, func(t *testing.T) {
			got := listServices(t, b, "grpc.reflection."+version+".ServerReflection")
			want := []string{testService, "test.v1.OtherService"}
			if !slices.Equal(got, want) {
				t.Errorf("reflection %s lists %v, want %v", version, got, want)
			}
		})
	}
}

// listServices asks the reflection service for its service list over gRPC.
// grpcreflect registers the reflection messages globally under a
// "connectext." prefix; v1 and v1alpha messages are identical on the wire.
func listServices(t *testing.T, b *testBundle, service string) []string {
	t.Helper()
	desc, err := protoregistry.GlobalFiles.FindDescriptorByName("connectext.grpc.reflection.v1.ServerReflection.ServerReflectionInfo")
	if err != nil {
		t.Fatalf("find reflection descriptor: %v", err)
	}
	method := desc.(protoreflect.MethodDescriptor)
	client := connect.NewClient[dynamicpb.Message, dynamicpb.Message](b.h2c,
		b.baseURL+"/"+service+"/ServerReflectionInfo",
		connect.WithGRPC(),
		connect.WithSchema(method),
		connect.WithResponseInitializer(func(_ connect.Spec, msg any) error {
			*msg.(*dynamicpb.Message) = *dynamicpb.NewMessage(method.Output())
			return nil
		}),
	)
	stream := client.CallBidiStream(context.Background())
	req := dynamicpb.NewMessage(method.Input())
	req.Set(method.Input().Fields().ByName("list_services"), protoreflect.ValueOfString("*"))
	if err := stream.Send(req); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := stream.CloseRequest(); err != nil {
		t.Fatalf("close request: %v", err)
	}
	res, err := stream.Receive()
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if err := stream.CloseResponse(); err != nil {
		t.Fatalf("close response: %v", err)
	}
	list := res.Get(method.Output().Fields().ByName("list_services_response")).Message()
	services := list.Get(list.Descriptor().Fields().ByName("service")).List()
	var names []string
	for i := range services.Len() {
		svc := services.Get(i).Message()
		names = append(names, svc.Get(svc.Descriptor().Fields().ByName("name")).String())
	}
	return names
}

func TestSmallResponsesAreNotCompressed(t *testing.T) {
	t.Parallel()
	b := setup(t, server.Config{}, nil)
	for _, tc := range []struct {
		size     int
		encoding string
	}{
		{10, ""},
		{2000, ""},     // a cart-sized response: compressing costs more CPU than it saves
		{8192, "gzip"}, // proves the check below can see compression
	} {
		body := strconv.Quote(strings.Repeat("a", tc.size))
		req, err := http.NewRequest(http.MethodPost, b.baseURL+echoTextProcedure, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept-Encoding", "gzip")
		res, err := b.http1.Do(req)
		if err != nil {
			t.Fatalf("EchoText(%d bytes): %v", tc.size, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("EchoText(%d bytes): status %d", tc.size, res.StatusCode)
		}
		if got := res.Header.Get("Content-Encoding"); got != tc.encoding {
			t.Errorf("EchoText(%d bytes) with Accept-Encoding gzip: Content-Encoding %q, want %q", tc.size, got, tc.encoding)
		}
	}
}

func TestDrainKeepsServingThenFinishesInFlightRequests(t *testing.T) {
	t.Parallel()
	const drainDelay = 7 * time.Second
	drainStarted := make(chan time.Duration, 1)
	endDrain := make(chan time.Time)
	b := setup(t, server.Config{DrainDelay: drainDelay}, func(s *server.Server) {
		server.SetDrainWait(s, func(d time.Duration) <-chan time.Time {
			drainStarted <- d
			return endDrain
		})
	})
	health := grpchealth.NewClient(b.h2c, b.baseURL, connect.WithGRPC())

	// Two requests in flight, one per HTTP version.
	inFlight := make(chan error, 2)
	for _, tr := range []transport{transports[0], transports[3]} {
		client := newTestClient[emptypb.Empty, emptypb.Empty](b, tr, blockProcedure)
		go func() {
			_, err := client.CallUnary(context.Background(), connect.NewRequest(&emptypb.Empty{}))
			inFlight <- err
		}()
		<-b.blockStarted
	}

	served := make(chan error, 1)
	go func() { served <- b.stop() }()
	if d := <-drainStarted; d != drainDelay {
		t.Errorf("drain waited %v, want DrainDelay %v", d, drainDelay)
	}

	// Draining: readiness is off, everything else still served.
	if status, body := b.get(t, "/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d %q, want 503", status, body)
	}
	if res, err := health.Check(context.Background(), &grpchealth.CheckRequest{Service: testService}); err != nil || res.Status != grpchealth.StatusNotServing {
		t.Errorf("health Check while draining: %+v, %v; want not serving", res, err)
	}
	if status, _ := b.get(t, "/healthz"); status != http.StatusOK {
		t.Errorf("/healthz while draining: %d, want 200", status)
	}
	echo := newTestClient[wrapperspb.BytesValue, wrapperspb.BytesValue](b, transports[0], echoProcedure)
	if _, err := echo.CallUnary(context.Background(), connect.NewRequest(wrapperspb.Bytes([]byte("x")))); err != nil {
		t.Errorf("new RPC while draining: %v, want success", err)
	}

	// Shutdown: the listener closes, in-flight requests are waited for.
	close(endDrain)
	waitUntilRefused(t, b.srv.Addr().String())
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v while requests were in flight", err)
	default:
	}
	b.release()
	for range 2 {
		if err := <-inFlight; err != nil {
			t.Errorf("in-flight request: %v, want success", err)
		}
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after drain: %v, want nil", err)
	}
}

// waitUntilRefused polls until addr refuses connections.
func waitUntilRefused(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		conn.Close()
	}
	t.Fatalf("%s still accepts connections", addr)
}

func TestShutdownTimeoutCutsOffStuckRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, server.Config{ShutdownTimeout: 50 * time.Millisecond}, nil)
	client := newTestClient[emptypb.Empty, emptypb.Empty](b, transports[0], blockProcedure)
	inFlight := make(chan error, 1)
	go func() {
		_, err := client.CallUnary(context.Background(), connect.NewRequest(&emptypb.Empty{}))
		inFlight <- err
	}()
	<-b.blockStarted

	err := b.stop()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Serve with a request stuck past ShutdownTimeout: %v, want context.DeadlineExceeded", err)
	}
	if err := <-inFlight; err == nil {
		t.Errorf("stuck request succeeded, want it cut off")
	}
	b.stopErr = nil // expected; keep cleanup quiet
}

func TestRunListensOnAddrAndStopsCleanly(t *testing.T) {
	t.Parallel()
	s := server.New(server.Config{Addr: "127.0.0.1:0", DrainDelay: -1, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()

	var addr net.Addr
	for deadline := time.Now().Add(10 * time.Second); addr == nil && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		addr = s.Addr()
	}
	if addr == nil {
		t.Fatalf("Addr() still nil; Run never listened")
	}
	res, err := http.Get("http://" + addr.String() + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %d, want 200", res.StatusCode)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Errorf("Run after cancel: %v, want nil", err)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Errorf("second Run: nil, want an error (a Server serves once)")
	}
}

// TestDrainClosesConnectionsSoClientsMoveOn: while draining, every
// HTTP/1.1 answer closes its connection ("Connection: close"), so a client
// behind a connection-level balancer reconnects, to a ready replica,
// before the listener closes; an idle connection opened before the drain
// still serves its next request (closing idle connections at once would
// race with a client sending on one).
func TestDrainClosesConnectionsSoClientsMoveOn(t *testing.T) {
	t.Parallel()
	drainStarted := make(chan struct{})
	endDrain := make(chan time.Time)
	b := setup(t, server.Config{DrainDelay: time.Minute}, func(s *server.Server) {
		server.SetDrainWait(s, func(time.Duration) <-chan time.Time {
			close(drainStarted)
			return endDrain
		})
	})
	var endOnce sync.Once
	end := func() { endOnce.Do(func() { close(endDrain) }) }
	t.Cleanup(end) // runs before setup's, which waits for Serve
	conn, err := net.Dial("tcp", strings.TrimPrefix(b.baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	healthz := func() (*http.Response, error) {
		t.Helper()
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n"); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, nil
	}
	if resp, err := healthz(); err != nil || resp.Close {
		t.Fatalf("before the drain: %v, close %v; want an answer keeping the connection", err, resp != nil && resp.Close)
	}
	served := make(chan error, 1)
	go func() { served <- b.stop() }()
	<-drainStarted
	time.Sleep(50 * time.Millisecond) // what a client may take to send on its idle connection
	resp, err := healthz()
	if err != nil {
		t.Fatalf("while draining, a request on a connection idle since before: %v; want it served", err)
	}
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Errorf("while draining: %d, close %v; want 200 with Connection: close", resp.StatusCode, resp.Close)
	}
	end()
	if err := <-served; err != nil {
		t.Errorf("Serve after drain: %v, want nil", err)
	}
}
