// Package producttest is a fake productsvc for cartsvc's tests: a real
// ProductService Connect handler on a loopback server, serving a catalog
// the test seeds and changes directly, which counts the BatchGetProducts
// calls it receives and can be told to drop connections, fail, be slow,
// hold its answers, or stop listening. It is to cartsvc what
// productsvc/relay/sinktest is to productsvc: the other service, faked at
// its contract, so that no test of one service imports the other.
//
// Only BatchGetProducts is implemented (the one procedure cartsvc calls);
// the others answer Unimplemented. Like productsvc's reads, it needs no
// token.
package producttest

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/internal/server"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// Currency is the currency of the products Create makes.
const Currency = "EUR"

// Service is a running fake ProductService. Its methods are safe for
// concurrent use.
type Service struct {
	productv1connect.UnimplementedProductServiceHandler

	t    testing.TB
	addr string

	calls atomic.Int64           // BatchGetProducts requests received
	trace atomic.Pointer[string] // traceparent of the last one
	held  atomic.Int64           // answers being held right now

	mu       sync.Mutex
	products map[string]*productv1.Product // by id; deleted ones are absent
	deleted  map[string]int64              // deleted ids, with their last version
	failure  failure
	gate     chan struct{} // non-nil: answers wait until it is closed
	stop     func()        // nil once stopped
}

// Start serves a fake ProductService with an empty catalog on a fresh
// loopback port until Stop or the end of the test.
func Start(t testing.TB) *Service {
	t.Helper()
	s := &Service{t: t, products: map[string]*productv1.Product{}, deleted: map[string]int64{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("producttest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	srv := server.New(shoptest.ServerConfig(t, nil))
	path, h := productv1connect.NewProductServiceHandler(s, server.HandlerOptions(server.Config{})...)
	srv.Handle(path, s.observe(h))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, ln); err != nil {
			t.Errorf("producttest: serve: %v", err)
		}
	}()
	s.stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(s.Stop)
	return s
}

// URL is the service's base URL.
func (s *Service) URL() string { return "http://" + s.addr }

// Stop releases held answers, closes the listener (connections are then
// refused, as by a stopped productsvc) and waits for calls in flight. It
// does nothing when the service is stopped.
func (s *Service) Stop() {
	s.Release()
	s.mu.Lock()
	stop := s.stop
	s.stop = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Create adds a product named name at price minor units of Currency, at
// version 1, with a new id and SKU, and returns it.
func (s *Service) Create(name string, price int64) *productv1.Product {
	now := timestamppb.Now()
	return s.Put(&productv1.Product{
		Id: uuid.NewString(), Sku: "SKU-" + strings.ToUpper(uuid.NewString()[:8]), Name: name,
		CategoryId: uuid.NewString(), CategoryName: "Things",
		Price: &typev1.Money{CurrencyCode: Currency, AmountMinor: price}, Version: 1,
		CreateTime: now, UpdateTime: now,
	})
}

// Put sets a product's state exactly as given (any id, currency or
// version; a deleted id comes back) and returns a copy of it.
func (s *Service) Put(p *productv1.Product) *productv1.Product {
	p = proto.CloneOf(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.deleted, p.GetId())
	s.products[p.GetId()] = p
	return proto.CloneOf(p)
}

// Update changes the product with id as change says, bumps its version as
// productsvc's UpdateProduct does, and returns the new state. It fails the
// test if there is no such product.
func (s *Service) Update(id string, change func(*productv1.Product)) *productv1.Product {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.products[id]
	if !ok {
		s.t.Fatalf("producttest: Update: no product %s", id)
	}
	p = proto.CloneOf(p)
	change(p)
	p.Version++
	p.UpdateTime = timestamppb.Now()
	s.products[id] = p
	return proto.CloneOf(p)
}

// SetPrice is Update of the price's amount.
func (s *Service) SetPrice(id string, price int64) *productv1.Product {
	return s.Update(id, func(p *productv1.Product) { p.Price.AmountMinor = price })
}

// Delete removes the product with id, as productsvc's DeleteProduct does
// (its id is then reported missing), and returns the deletion's version.
// It fails the test if there is no such product.
func (s *Service) Delete(id string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.products[id]
	if !ok {
		s.t.Fatalf("producttest: Delete: no product %s", id)
	}
	delete(s.products, id)
	s.deleted[id] = p.Version + 1
	return p.Version + 1
}

// Calls is the number of BatchGetProducts requests received, whatever
// became of them (dropped, failed, held or answered).
func (s *Service) Calls() int64 { return s.calls.Load() }

// Traceparent is the traceparent header of the last BatchGetProducts
// request ("" if none).
func (s *Service) Traceparent() string {
	if p := s.trace.Load(); p != nil {
		return *p
	}
	return ""
}

// Held is the number of answers being held right now (see Hold).
func (s *Service) Held() int64 { return s.held.Load() }

// BatchGetProducts implements ProductService: the products asked for that
// exist, and the others' ids in missing_ids, each once, in the order
// asked. The answer is made when the call arrives; Hold delays only its
// sending.
func (s *Service) BatchGetProducts(ctx context.Context, req *connect.Request[productv1.BatchGetProductsRequest]) (*connect.Response[productv1.BatchGetProductsResponse], error) {
	f := s.currentFailure()
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	if f.code != 0 {
		return nil, connect.NewError(f.code, errFailure)
	}
	resp := s.answer(req.Msg.GetIds())
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		s.held.Add(1)
		defer s.held.Add(-1)
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
		}
	}
	return connect.NewResponse(resp), nil
}

// answer is the response to ids from the catalog as it is now.
func (s *Service) answer(ids []string) *productv1.BatchGetProductsResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &productv1.BatchGetProductsResponse{}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if p, ok := s.products[id]; ok {
			resp.Products = append(resp.Products, proto.CloneOf(p))
		} else {
			resp.MissingIds = append(resp.MissingIds, id)
		}
	}
	return resp
}

var _ productv1connect.ProductServiceHandler = (*Service)(nil)
