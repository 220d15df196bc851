package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/decoupledshop/shop/internal/server"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// Test procedures, served by every test bundle.
const (
	testService       = "test.v1.EchoService"
	echoProcedure     = "/test.v1.EchoService/Echo"
	echoTextProcedure = "/test.v1.EchoService/EchoText"
	deadlineProcedure = "/test.v1.EchoService/Deadline"
	failProcedure     = "/test.v1.EchoService/Fail"
	blockProcedure    = "/test.v1.EchoService/Block"
	rawPath           = "/test.raw/"
)

// testBundle is a real server on a loopback port with the test handlers
// mounted, and HTTP clients for each transport.
type testBundle struct {
	srv     *server.Server
	cfg     server.Config
	baseURL string
	logs    *syncBuffer

	http1 *http.Client // HTTP/1.1 only
	h2c   *http.Client // HTTP/2 over cleartext only

	// Block handlers send on blockStarted once running, then wait for
	// releaseBlocked to be closed.
	blockStarted   chan struct{}
	releaseBlocked chan struct{}
	releaseOnce    sync.Once

	cancel   context.CancelFunc
	served   chan error
	stopOnce sync.Once
	stopErr  error
}

// setup starts a server configured by cfg (DrainDelay defaults to none
// here, unlike in production) on 127.0.0.1:0. modify, if not nil, runs
// after New and before Serve.
func setup(t *testing.T, cfg server.Config, modify func(*server.Server)) *testBundle {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	b := &testBundle{
		baseURL:        "http://" + ln.Addr().String(),
		logs:           &syncBuffer{},
		http1:          newClient(func(p *http.Protocols) { p.SetHTTP1(true) }),
		h2c:            newClient(func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) }),
		blockStarted:   make(chan struct{}, 16),
		releaseBlocked: make(chan struct{}),
		served:         make(chan error, 1),
	}
	if cfg.DrainDelay == 0 {
		cfg.DrainDelay = -1
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	cfg.Logger = slog.New(slog.NewTextHandler(b.logs, nil))
	b.cfg = cfg
	b.srv = server.New(cfg)
	b.mountTestHandlers()
	if modify != nil {
		modify(b.srv)
	}

	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { b.served <- b.srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		b.release()
		// Closing idle client connections first spares the server's HTTP/2
		// graceful shutdown its wait for clients to hang up.
		b.http1.CloseIdleConnections()
		b.h2c.CloseIdleConnections()
		if err := b.stop(); err != nil {
			t.Errorf("Serve returned %v at cleanup, want nil", err)
		}
	})
	return b
}

// stop cancels Serve's context and returns what Serve returned.
func (b *testBundle) stop() error {
	b.stopOnce.Do(func() {
		b.cancel()
		b.stopErr = <-b.served
	})
	return b.stopErr
}

// release lets every blocked handler return.
func (b *testBundle) release() { b.releaseOnce.Do(func() { close(b.releaseBlocked) }) }

func newClient(set func(*http.Protocols)) *http.Client {
	p := new(http.Protocols)
	set(p)
	return &http.Client{Transport: &http.Transport{Protocols: p}}
}

func (b *testBundle) mountTestHandlers() {
	opts := server.HandlerOptions(b.cfg)
	mux := http.NewServeMux()
	mux.Handle(echoProcedure, connect.NewUnaryHandler(echoProcedure,
		func(_ context.Context, req *connect.Request[wrapperspb.BytesValue]) (*connect.Response[wrapperspb.BytesValue], error) {
			res := connect.NewResponse(req.Msg)
			res.Header().Set("X-Peer-Protocol", req.Peer().Protocol)
			return res, nil
		}, opts...))
	mux.Handle(echoTextProcedure, connect.NewUnaryHandler(echoTextProcedure,
		func(_ context.Context, req *connect.Request[wrapperspb.StringValue]) (*connect.Response[wrapperspb.StringValue], error) {
			return connect.NewResponse(req.Msg), nil
		}, opts...))
	mux.Handle(deadlineProcedure, connect.NewUnaryHandler(deadlineProcedure,
		func(ctx context.Context, _ *connect.Request[emptypb.Empty]) (*connect.Response[wrapperspb.Int64Value], error) {
			deadline, ok := ctx.Deadline()
			if !ok {
				return connect.NewResponse(wrapperspb.Int64(-1)), nil
			}
			return connect.NewResponse(wrapperspb.Int64(int64(time.Until(deadline)))), nil
		}, opts...))
	mux.Handle(failProcedure, connect.NewUnaryHandler(failProcedure,
		func(ctx context.Context, req *connect.Request[wrapperspb.StringValue]) (*connect.Response[emptypb.Empty], error) {
			return nil, b.failure(ctx, req.Msg.GetValue())
		}, opts...))
	mux.Handle(blockProcedure, connect.NewUnaryHandler(blockProcedure,
		func(ctx context.Context, _ *connect.Request[emptypb.Empty]) (*connect.Response[emptypb.Empty], error) {
			b.blockStarted <- struct{}{}
			select {
			case <-b.releaseBlocked:
				return connect.NewResponse(&emptypb.Empty{}), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}, opts...))
	// Record the HTTP version each RPC arrived on.
	b.srv.Handle("/"+testService+"/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Http-Proto", r.Proto)
		mux.ServeHTTP(w, r)
	}))
	b.srv.RegisterServiceNames(testService)

	// A plain handler that reports whether it could read the whole body.
	b.srv.Handle(rawPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d", n)
	}))
}

// failure returns the error the Fail procedure answers for name.
func (b *testBundle) failure(ctx context.Context, name string) error {
	switch name {
	case "invalid":
		return shoperr.Invalid("name", "must not be empty")
	case "wrapped-not-found":
		return fmt.Errorf("store: get product 42 (host db-7.internal): %w", shoperr.NotFound("product not found"))
	case "internal-code":
		return shoperr.Errorf(shoperr.CodeInternal, "pq: secret internal detail")
	case "secret":
		return errors.New("pq: secret internal detail")
	case "connect":
		return connect.NewError(connect.CodeFailedPrecondition, errors.New("category still has products"))
	case "deadline":
		return fmt.Errorf("query: %w", context.DeadlineExceeded) // a dependency's timeout, the request still live
	case "own-deadline":
		<-ctx.Done() // the request's own deadline
		return fmt.Errorf("query: %w", ctx.Err())
	case "canceled":
		return fmt.Errorf("query: %w", context.Canceled) // a dependency's call cancelled, the request still live
	case "upstream":
		// An error received from another service, returned untranslated.
		client := connect.NewClient[wrapperspb.StringValue, emptypb.Empty](b.http1, b.baseURL+failProcedure)
		_, err := client.CallUnary(ctx, connect.NewRequest(wrapperspb.String("permission")))
		return err
	case "permission":
		return shoperr.PermissionDenied("only admins may do this")
	case "database-down":
		return fmt.Errorf("insert cart item: %w", &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command on db-7"})
	case "panic":
		panic("pq: secret internal detail")
	}
	return fmt.Errorf("unknown failure %q", name)
}

// get sends a GET with the HTTP/1.1 client and returns status and body.
func (b *testBundle) get(t *testing.T, path string) (int, string) {
	t.Helper()
	res, err := b.http1.Get(b.baseURL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return res.StatusCode, string(body)
}

// transport is one way of reaching the server.
type transport struct {
	name   string
	client func(*testBundle) *http.Client
	opts   []connect.ClientOption
	proto  string // HTTP version the server sees
	peer   string // connect.Peer.Protocol the handler sees
}

var transports = []transport{
	{"connect+proto/http1", (*testBundle).http1Client, nil, "HTTP/1.1", connect.ProtocolConnect},
	{"connect+json/http1", (*testBundle).http1Client, []connect.ClientOption{connect.WithProtoJSON()}, "HTTP/1.1", connect.ProtocolConnect},
	{"connect+proto/h2c", (*testBundle).h2cClient, nil, "HTTP/2.0", connect.ProtocolConnect},
	{"grpc/h2c", (*testBundle).h2cClient, []connect.ClientOption{connect.WithGRPC()}, "HTTP/2.0", connect.ProtocolGRPC},
	{"grpcweb/http1", (*testBundle).http1Client, []connect.ClientOption{connect.WithGRPCWeb()}, "HTTP/1.1", connect.ProtocolGRPCWeb},
}

// binaryTransports are the transports using the binary protobuf codec, whose
// message sizes tests can compute exactly.
func binaryTransports() []transport {
	var out []transport
	for _, tr := range transports {
		if !strings.Contains(tr.name, "json") {
			out = append(out, tr)
		}
	}
	return out
}

func (b *testBundle) http1Client() *http.Client { return b.http1 }
func (b *testBundle) h2cClient() *http.Client   { return b.h2c }

func newTestClient[Req, Res any](b *testBundle, tr transport, procedure string, extra ...connect.ClientOption) *connect.Client[Req, Res] {
	opts := append(append(server.ClientOptions(), tr.opts...), extra...)
	return connect.NewClient[Req, Res](tr.client(b), b.baseURL+procedure, opts...)
}

// bytesOfSize returns a BytesValue whose binary encoding is exactly size
// bytes.
func bytesOfSize(t *testing.T, size int) *wrapperspb.BytesValue {
	t.Helper()
	for n := size; n >= 0 && n >= size-16; n-- {
		msg := wrapperspb.Bytes(make([]byte, n))
		if proto.Size(msg) == size {
			return msg
		}
	}
	t.Fatalf("no BytesValue encodes to exactly %d bytes", size)
	return nil
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// atomicError holds an error that a test changes while a server reads it.
type atomicError struct{ v atomic.Pointer[error] }

func (a *atomicError) Store(err error) { a.v.Store(&err) }

func (a *atomicError) Load() error {
	if p := a.v.Load(); p != nil {
		return *p
	}
	return nil
}
