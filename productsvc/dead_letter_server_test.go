package productsvc_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
)

// poison creates a product whose event the sink refuses, waits until the
// relay has dead-lettered it, and returns the product id.
func (b *eventsBundle) poison(t *testing.T, categoryID, sku string) string {
	t.Helper()
	ctx := adminContext()
	products := &productsvc.ProductServer{Store: b.catalog}
	// The sink refuses by event id, which is only known once queued: stop
	// the sink from accepting anything until the refusal is in place.
	b.sink.FailWith(connect.CodeUnavailable)
	defer b.sink.FailWith(0)
	resp, err := products.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
		Sku: sku, Name: "Poison", CategoryId: categoryID, Price: eur(1),
	}))
	if err != nil {
		t.Fatal(err)
	}
	var eventID string
	if err := b.pool.QueryRow(context.Background(),
		"SELECT event_id::text FROM outbox WHERE aggregate_id = $1", resp.Msg.Product.Id).Scan(&eventID); err != nil {
		t.Fatalf("the product's queued event: %v", err)
	}
	b.sink.Refuse(eventID)
	// Make it due now whatever backoff the Unavailable answers caused.
	if _, err := b.pool.Exec(context.Background(),
		"UPDATE outbox SET next_attempt_at = now() WHERE event_id = $1 AND locked_by IS NULL", eventID); err != nil {
		t.Fatal(err)
	}
	return resp.Msg.Product.Id
}

func (b *eventsBundle) waitDead(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got int
		if err := b.pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox_dead").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters after 20s, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeadLetterReplayDeliversAfterAFix(t *testing.T) {
	t.Parallel()
	b := eventsSetup(t)
	b.startRelay(t)
	ctx := context.Background()
	cat, err := (&productsvc.CategoryServer{Store: b.catalog}).CreateCategory(adminContext(),
		connect.NewRequest(&productv1.CreateCategoryRequest{Name: "Things"}))
	if err != nil {
		t.Fatal(err)
	}
	b.sink.WaitFor(1, 10*time.Second) // the category's event
	productID := b.poison(t, cat.Msg.Category.Id, "BAD-1")
	b.waitDead(t, 1)

	dlq := b.deadLetters(b.admin)
	list, err := dlq.ListDeadLetters(ctx, connect.NewRequest(&eventsv1.ListDeadLettersRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Msg.DeadLetters) != 1 {
		t.Fatalf("ListDeadLetters = %v, want one", list.Msg.DeadLetters)
	}
	d := list.Msg.DeadLetters[0]
	if d.GetPeer() != "cartsvc" || d.GetAttempts() < 1 || d.GetEvent().GetAggregateId() != productID ||
		d.GetEvent().GetProductChanged().GetSku() != "BAD-1" || d.GetReason() == "" || d.GetCreateTime() == nil {
		t.Fatalf("dead letter = %v; want the product's event for cartsvc with its reason and attempts", d)
	}
	t.Logf("dead letter reason: %s", d.GetReason())

	// An empty request does nothing; ids and all together are refused.
	if resp, err := dlq.ReplayDeadLetters(ctx, connect.NewRequest(&eventsv1.ReplayDeadLettersRequest{})); err != nil || resp.Msg.ReplayedCount != 0 {
		t.Fatalf("empty ReplayDeadLetters = %v, %v; want nothing replayed", resp, err)
	}
	if _, err := dlq.ReplayDeadLetters(ctx, connect.NewRequest(&eventsv1.ReplayDeadLettersRequest{Ids: []string{d.Id}, All: true})); shoptest.Code(err) != connect.CodeInvalidArgument {
		t.Fatalf("ReplayDeadLetters with ids and all: %v, want InvalidArgument", err)
	}
	if _, err := dlq.ReplayDeadLetters(ctx, connect.NewRequest(&eventsv1.ReplayDeadLettersRequest{Ids: []string{"nope"}})); shoptest.Code(err) != connect.CodeInvalidArgument {
		t.Fatalf("ReplayDeadLetters with a malformed id: %v, want InvalidArgument", err)
	}
	alice := b.deadLetters(issuertest.UserToken(t, b.iss, shoptest.Alice))
	if _, err := alice.ReplayDeadLetters(ctx, connect.NewRequest(&eventsv1.ReplayDeadLettersRequest{All: true})); shoptest.Code(err) != connect.CodePermissionDenied {
		t.Fatalf("ReplayDeadLetters as a shopper: %v, want PermissionDenied", err)
	}
	if b.sink.Count() != 1 { // the category only
		t.Fatalf("the sink accepted %d events before the fix, want 1", b.sink.Count())
	}

	// The subscriber is fixed; the replay puts the event back with its
	// attempts reset, and the relay delivers it.
	b.sink.Refuse()
	resp, err := dlq.ReplayDeadLetters(ctx, connect.NewRequest(&eventsv1.ReplayDeadLettersRequest{Ids: []string{d.Id}}))
	if err != nil || resp.Msg.ReplayedCount != 1 {
		t.Fatalf("ReplayDeadLetters = %v, %v; want 1 replayed", resp, err)
	}
	b.sink.WaitFor(2, 10*time.Second)
	if got := b.sink.Events()[1]; got.GetId() != d.GetEvent().GetId() {
		t.Fatalf("delivered %v after the replay, want the dead letter's event %s", got, d.GetEvent().GetId())
	}
	waitDrained(t, b.pool)
	b.waitDead(t, 0)
}

func TestDeadLettersPageAndPurge(t *testing.T) {
	t.Parallel()
	b := eventsSetup(t)
	b.startRelay(t)
	ctx := context.Background()
	cat, err := (&productsvc.CategoryServer{Store: b.catalog}).CreateCategory(adminContext(),
		connect.NewRequest(&productv1.CreateCategoryRequest{Name: "Things"}))
	if err != nil {
		t.Fatal(err)
	}
	b.sink.WaitFor(1, 10*time.Second) // the category's event
	for i, sku := range []string{"BAD-1", "BAD-2", "BAD-3", "BAD-4", "BAD-5"} {
		b.poison(t, cat.Msg.Category.Id, sku)
		b.waitDead(t, i+1)
	}

	dlq := b.deadLetters(b.admin)
	seen := map[string]bool{}
	var skus []string
	token := ""
	for page := 0; ; page++ {
		resp, err := dlq.ListDeadLetters(ctx, connect.NewRequest(&eventsv1.ListDeadLettersRequest{PageSize: 2, PageToken: token}))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range resp.Msg.DeadLetters {
			if seen[d.Id] {
				t.Fatalf("dead letter %s listed twice", d.Id)
			}
			seen[d.Id] = true
			skus = append(skus, d.GetEvent().GetProductChanged().GetSku())
		}
		if token = resp.Msg.NextPageToken; token == "" {
			break
		}
		if page > 5 {
			t.Fatal("more pages than dead letters")
		}
	}
	if len(seen) != 5 || skus[0] != "BAD-5" || skus[4] != "BAD-1" {
		t.Fatalf("listed %v; want the 5 dead letters, newest first", skus)
	}

	first := ""
	for id := range seen {
		first = id
		break
	}
	if resp, err := dlq.PurgeDeadLetters(ctx, connect.NewRequest(&eventsv1.PurgeDeadLettersRequest{})); err != nil || resp.Msg.PurgedCount != 0 {
		t.Fatalf("empty PurgeDeadLetters = %v, %v; want nothing purged", resp, err)
	}
	if _, err := dlq.PurgeDeadLetters(ctx, connect.NewRequest(&eventsv1.PurgeDeadLettersRequest{Ids: []string{first}, All: true})); shoptest.Code(err) != connect.CodeInvalidArgument {
		t.Fatalf("PurgeDeadLetters with ids and all: %v, want InvalidArgument", err)
	}
	if resp, err := dlq.PurgeDeadLetters(ctx, connect.NewRequest(&eventsv1.PurgeDeadLettersRequest{Ids: []string{first}})); err != nil || resp.Msg.PurgedCount != 1 {
		t.Fatalf("PurgeDeadLetters(one) = %v, %v; want 1", resp, err)
	}
	if resp, err := dlq.PurgeDeadLetters(ctx, connect.NewRequest(&eventsv1.PurgeDeadLettersRequest{All: true})); err != nil || resp.Msg.PurgedCount != 4 {
		t.Fatalf("PurgeDeadLetters(all) = %v, %v; want the other 4", resp, err)
	}
	b.waitDead(t, 0)
	if n := b.sink.Count(); n != 1 {
		t.Fatalf("the sink accepted %d events, want only the category's", n)
	}
}
