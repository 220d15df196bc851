package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
)

// flakyCart answers AddCartItem Unavailable failures times, then a cart,
// and records the request_id of every attempt.
type flakyCart struct {
	cartv1connect.UnimplementedCartServiceHandler
	failures   int
	requestIDs []string
}

func (f *flakyCart) AddCartItem(_ context.Context, req *connect.Request[cartv1.AddCartItemRequest]) (*connect.Response[cartv1.AddCartItemResponse], error) {
	f.requestIDs = append(f.requestIDs, req.Msg.GetRequestId())
	if len(f.requestIDs) <= f.failures {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("draining"))
	}
	return connect.NewResponse(&cartv1.AddCartItemResponse{Cart: &cartv1.Cart{}}), nil
}

func (f *flakyCart) RemoveCartItem(context.Context, *connect.Request[cartv1.RemoveCartItemRequest]) (*connect.Response[cartv1.RemoveCartItemResponse], error) {
	return nil, connect.NewError(connect.CodeNotFound, errors.New("no such line"))
}

func client(t *testing.T, h *flakyCart, attempts int) cartv1connect.CartServiceClient {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(cartv1connect.NewCartServiceHandler(h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return cartv1connect.NewCartServiceClient(srv.Client(), srv.URL, connect.WithInterceptors(retryUnavailable(attempts, time.Millisecond)))
}

// TestRetryUnavailableResendsTheSameRequest: Unavailable answers are
// retried with the same request_id until one succeeds.
func TestRetryUnavailableResendsTheSameRequest(t *testing.T) {
	h := &flakyCart{failures: 3}
	id := "req-1"
	_, err := client(t, h, 5).AddCartItem(context.Background(), connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: "p", Quantity: 1, RequestId: &id}))
	if err != nil {
		t.Fatalf("AddCartItem after 3 Unavailable answers: %v, want success", err)
	}
	if len(h.requestIDs) != 4 {
		t.Fatalf("%d attempts, want 4", len(h.requestIDs))
	}
	for i, got := range h.requestIDs {
		if got != id {
			t.Errorf("attempt %d carried request_id %q, want %q", i+1, got, id)
		}
	}
}

// TestRetryUnavailableGivesUp: attempts bounds the tries, and other
// codes are not retried.
func TestRetryUnavailableGivesUp(t *testing.T) {
	h := &flakyCart{failures: 10}
	id := "req-2"
	_, err := client(t, h, 3).AddCartItem(context.Background(), connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: "p", Quantity: 1, RequestId: &id}))
	if connect.CodeOf(err) != connect.CodeUnavailable || len(h.requestIDs) != 3 {
		t.Errorf("always Unavailable: %v after %d attempts; want Unavailable after 3", err, len(h.requestIDs))
	}
	_, err = client(t, h, 3).RemoveCartItem(context.Background(), connect.NewRequest(&cartv1.RemoveCartItemRequest{ProductId: "p"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("NotFound: %v; want it returned at once", err)
	}
}
