package producttest_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/decoupledshop/shop/cartsvc/productclient/producttest"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
)

func batchGet(ctx context.Context, s *producttest.Service, ids ...string) (*productv1.BatchGetProductsResponse, error) {
	client := productv1connect.NewProductServiceClient(http.DefaultClient, s.URL())
	resp, err := client.BatchGetProducts(ctx, connect.NewRequest(&productv1.BatchGetProductsRequest{Ids: ids}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// TestAnswersFromTheCatalog: the products asked for that exist, each once,
// at their current version; deleted and unknown ids are missing.
func TestAnswersFromTheCatalog(t *testing.T) {
	t.Parallel()
	s := producttest.Start(t)
	tea, cup := s.Create("Tea", 450), s.Create("Cup", 900)
	s.SetPrice(tea.Id, 500)
	if v := s.Delete(cup.Id); v != 2 {
		t.Errorf("Delete of a version 1 product = version %d, want 2", v)
	}
	unknown := uuid.NewString()
	got, err := batchGet(context.Background(), s, tea.Id, cup.Id, unknown, tea.Id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Products) != 1 || got.Products[0].Version != 2 || got.Products[0].Price.AmountMinor != 500 || got.Products[0].Price.CurrencyCode != producttest.Currency {
		t.Errorf("products = %v; want the tea once, at version 2 and 5.00", got.Products)
	}
	if len(got.MissingIds) != 2 || got.MissingIds[0] != cup.Id || got.MissingIds[1] != unknown {
		t.Errorf("missing = %v; want the deleted cup and the unknown id", got.MissingIds)
	}
	if n := s.Calls(); n != 1 {
		t.Errorf("Calls = %d, want 1", n)
	}
}

// TestFaults: FailWith answers with its code, Drop with no answer, Slow
// not before the caller gives up, Stop refuses connections; Recover
// restores answers; every request is counted.
func TestFaults(t *testing.T) {
	t.Parallel()
	s := producttest.Start(t)
	ctx := context.Background()
	s.FailWith(connect.CodeUnavailable)
	if _, err := batchGet(ctx, s); connect.CodeOf(err) != connect.CodeUnavailable || !connect.IsWireError(err) {
		t.Errorf("with FailWith(Unavailable): %v, want Unavailable from the server", err)
	}
	s.Drop()
	if _, err := batchGet(ctx, s); err == nil || connect.IsWireError(err) {
		t.Errorf("with Drop: %v, want a transport error", err)
	}
	s.Slow(time.Minute)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := batchGet(short, s); connect.CodeOf(err) != connect.CodeDeadlineExceeded {
		t.Errorf("with Slow(1m) and a 100 ms deadline: %v, want DeadlineExceeded", err)
	}
	s.Recover()
	if _, err := batchGet(ctx, s); err != nil {
		t.Errorf("after Recover: %v", err)
	}
	if n := s.Calls(); n != 4 {
		t.Errorf("Calls = %d, want 4", n)
	}
	s.Stop()
	if _, err := batchGet(ctx, s); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("after Stop: %v, want Unavailable (connection refused)", err)
	}
}

// TestHoldSendsTheCatalogAsItWas: a held answer carries the catalog as it
// was when the call arrived, even if it changed before Release.
func TestHoldSendsTheCatalogAsItWas(t *testing.T) {
	t.Parallel()
	s := producttest.Start(t)
	lamp := s.Create("Lamp", 1000)
	s.Hold()
	done := make(chan *productv1.BatchGetProductsResponse, 1)
	go func() {
		got, err := batchGet(context.Background(), s, lamp.Id)
		if err != nil {
			t.Errorf("held call: %v", err)
		}
		done <- got
	}()
	for s.Held() != 1 {
		time.Sleep(time.Millisecond)
	}
	s.SetPrice(lamp.Id, 1300)
	s.Release()
	if got := <-done; got == nil || len(got.Products) != 1 || got.Products[0].Version != 1 {
		t.Errorf("held answer = %v; want version 1", got)
	}
}
