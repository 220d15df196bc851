package server_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
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
