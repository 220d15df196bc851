package server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"github.com/decoupledshop/shop/internal/server"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

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

	inFlight := b.blockOnePerHTTPVersion()

	served := make(chan error, 1)
	go func() { served <- b.stop() }()
	if d := <-drainStarted; d != drainDelay {
		t.Errorf("drain waited %v, want DrainDelay %v", d, drainDelay)
	}

	b.wantDraining(t)

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

// blockOnePerHTTPVersion starts two calls of the blocking procedure, over
// HTTP/1.1 and HTTP/2, returns once both are in the handler, and sends
// each call's error on the returned channel when it ends.
func (b *testBundle) blockOnePerHTTPVersion() <-chan error {
	inFlight := make(chan error, 2)
	for _, tr := range []transport{transports[0], transports[3]} {
		client := newTestClient[emptypb.Empty, emptypb.Empty](b, tr, blockProcedure)
		go func() {
			_, err := client.CallUnary(context.Background(), connect.NewRequest(&emptypb.Empty{}))
			inFlight <- err
		}()
		<-b.blockStarted
	}
	return inFlight
}

// wantDraining checks a draining server: readiness is off, everything else
// still served.
func (b *testBundle) wantDraining(t *testing.T) {
	t.Helper()
	if status, body := b.get(t, "/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d %q, want 503", status, body)
	}
	health := grpchealth.NewClient(b.h2c, b.baseURL, connect.WithGRPC())
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
