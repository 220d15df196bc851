package cartsvc_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/decoupledshop/shop/cartsvc"
	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// poisons returns events that violate the event contract, each with a word
// its reason must contain.
func poisons(productID string) map[string]*eventsv1.Event {
	usd := changed(productID, 5, "Dollar", 100)
	usd.GetProductChanged().Price = &typev1.Money{CurrencyCode: "USD", AmountMinor: 100}
	negative := changed(productID, 5, "Negative", -1)
	otherID := changed(productID, 5, "Other", 100)
	otherID.GetProductChanged().Id = uuid.NewString()
	badID := changed(productID, 5, "Bad id", 100)
	badID.Id = "not-a-uuid"
	zero := deleted(productID, 0)
	mismatch := changed(productID, 5, "Mismatch", 100)
	mismatch.Type = "shop.events.v1.ProductDeleted"
	missing := envelope("shop.events.v1.ProductChanged", productID, 5)
	versions := changed(productID, 5, "Versions", 100)
	versions.GetProductChanged().Version = 6
	noName := changed(productID, 5, "", 100)
	return map[string]*eventsv1.Event{
		"currency": usd, "amount_minor": negative, "product_changed.id": otherID, "id: must be a UUID": badID,
		"aggregate_version": zero, "does not match": mismatch, "payload": missing, "product_changed.version": versions,
		"name": noName,
	}
}

// TestPoisonEventsAreDeadLettered: each poison event is DEAD_LETTERED with
// its reason and kept in the DLQ; the good events of the same call are
// applied; a redelivered poison event updates its dead letter.
func TestPoisonEventsAreDeadLettered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vase := b.createProduct(t, "Vase", 3000)
	b.add(t, "alice", vase, 1)
	bad := poisons(vase.Id)
	good1, good2 := changed(uuid.NewString(), 1, "Other", 10), changed(vase.Id, 2, "Vase II", 3100)
	batch := []*eventsv1.Event{good1}
	for _, ev := range bad {
		batch = append(batch, ev)
	}
	batch = append(batch, good2)
	res := b.deliver(t, batch...)
	if res[good1.Id].Status != accepted || res[good2.Id].Status != accepted {
		t.Errorf("the good events = %v, %v; want ACCEPTED", res[good1.Id].Status, res[good2.Id].Status)
	}
	for word, ev := range bad {
		r := res[ev.Id]
		if r.GetStatus() != deadLettered || !strings.Contains(r.GetReason(), word) {
			t.Errorf("poison (%s) = %v %q; want DEAD_LETTERED with a reason naming %q", word, r.GetStatus(), r.GetReason(), word)
		}
	}
	if got := b.line(t, "alice", vase.Id); got.Name != "Vase II" || got.Version != 2 {
		t.Errorf("line = %+v; want the good event applied (Vase II, version 2)", got)
	}
	if n := b.count(t, "SELECT count(*) FROM event_dlq"); n != len(bad) {
		t.Errorf("%d dead letters, want %d", n, len(bad))
	}
	if n := b.count(t, "SELECT count(*) FROM inbox"); n != 2 {
		t.Errorf("%d inbox rows, want the 2 good events only", n)
	}
	// Delivered again (the sender did not get the first answer): the same
	// dead letter, one more attempt.
	if got := b.statusOf(t, bad["currency"]); got != deadLettered {
		t.Errorf("the poison again = %v, want DEAD_LETTERED", got)
	}
	if n := b.count(t, "SELECT attempts FROM event_dlq WHERE event_id = $1", bad["currency"].Id); n != 2 {
		t.Errorf("attempts of the redelivered poison = %d, want 2", n)
	}
	if n := b.count(t, "SELECT count(*) FROM event_dlq"); n != len(bad) {
		t.Errorf("%d dead letters after a redelivery, want still %d", n, len(bad))
	}
	// The one without a UUID id cannot be recognised again: a row each time.
	b.statusOf(t, bad["id: must be a UUID"])
	if n := b.count(t, "SELECT count(*) FROM event_dlq WHERE event_id IS NULL"); n != 2 {
		t.Errorf("%d dead letters without an event id, want 2", n)
	}
}

// TestDeadLetterService: admins list dead letters page by page, replay
// them (a still-poison one stays with the new reason and one more attempt;
// after the receiver is fixed, here reconfigured to accept the currency,
// they are applied and leave the queue) and purge them.
func TestDeadLetterService(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var usd []*eventsv1.Event
	for i := range 3 {
		ev := changed(uuid.NewString(), int64(1+i), "Import", 100)
		ev.GetProductChanged().Price.CurrencyCode = "USD"
		usd = append(usd, ev)
	}
	broken := poisons(uuid.NewString())["product_changed.id"]
	b.deliver(t, append(usd, broken)...)

	dlq := b.deadLetters("admin")
	if _, err := b.deadLetters("alice").ListDeadLetters(ctx, connect.NewRequest(&eventsv1.ListDeadLettersRequest{})); shoptest.Code(err) != connect.CodePermissionDenied {
		t.Errorf("ListDeadLetters as a user: %v, want PermissionDenied", err)
	}
	if _, err := sink(b.cartURL, b.tokens["service"]).DeliverEvents(ctx, connect.NewRequest(&eventsv1.DeliverEventsRequest{})); err != nil {
		t.Errorf("an empty DeliverEvents: %v", err)
	}
	listed := listDeadLetters(t, dlq, 3)
	if len(listed) != 4 {
		t.Fatalf("listed %d dead letters in pages of 3, want 4", len(listed))
	}
	// Events of one batch are applied concurrently, so their dead letters'
	// order is not the delivery order: find the broken one by its event id.
	last, fixable := pickDeadLetter(listed, broken.Id) // the broken one, and a USD one
	if last == nil || fixable == nil {
		t.Fatalf("the broken event %s is not among the dead letters", broken.Id)
	}
	if last.Event.GetId() != broken.Id || last.Peer != shoptest.EventsClient || last.Attempts != 1 || !strings.Contains(last.Reason, "product_changed.id") {
		t.Errorf("newest dead letter = %v; want the broken event from %s, 1 attempt, with its reason", last, shoptest.EventsClient)
	}
	if !proto.Equal(last.Event, broken) {
		t.Errorf("the dead letter's event differs from the one delivered")
	}

	for name, req := range map[string]*eventsv1.ReplayDeadLettersRequest{
		"ids and all": {Ids: []string{last.Id}, All: true},
		"a bad id":    {Ids: []string{"x"}},
	} {
		if _, err := dlq.ReplayDeadLetters(ctx, connect.NewRequest(req)); shoptest.Code(err) != connect.CodeInvalidArgument {
			t.Errorf("replay with %s: %v, want InvalidArgument", name, err)
		}
	}
	if n := replay(t, dlq, &eventsv1.ReplayDeadLettersRequest{}); n != 0 || b.count(t, "SELECT count(*) FROM event_dlq") != 4 {
		t.Errorf("an empty replay replayed %d", n)
	}
	if n := replay(t, dlq, &eventsv1.ReplayDeadLettersRequest{All: true}); n != 0 {
		t.Errorf("replaying poison to the same receiver replayed %d, want 0", n)
	}
	if n := b.count(t, "SELECT count(*) FROM event_dlq WHERE attempts = 2"); n != 4 {
		t.Errorf("%d dead letters with 2 attempts after a failed replay, want 4", n)
	}

	// The fix: the shop now sells in USD (a receiver configured so, on the
	// same database).
	fixed := b.serveCart(t, cartsvc.NewService(b.cartPool, b.catalog, cartsvc.Options{Currency: "USD", Now: b.clock.Now}))
	fixedDLQ := eventsv1connect.NewDeadLetterServiceClient(shoptest.HTTPClient(), fixed, connect.WithInterceptors(shoptest.Bearer(b.tokens["admin"])))
	if n := replay(t, fixedDLQ, &eventsv1.ReplayDeadLettersRequest{Ids: []string{fixable.Id, uuid.NewString()}}); n != 1 {
		t.Errorf("replaying one fixed dead letter (and an unknown id) replayed %d, want 1", n)
	}
	// A redelivery of a dead-lettered event that the fixed receiver
	// accepts resolves its dead letter too.
	if got := b.deliverTo(t, fixed, usd[0])[usd[0].Id].Status; got != accepted && got != duplicate {
		t.Errorf("redelivering a dead-lettered event to the fixed receiver = %v", got)
	}
	if n := replay(t, fixedDLQ, &eventsv1.ReplayDeadLettersRequest{All: true}); n < 1 {
		t.Errorf("replaying all after the fix replayed %d", n)
	}
	for _, ev := range usd {
		if v, _ := b.known(t, ev.AggregateId); v != ev.AggregateVersion {
			t.Errorf("after the replay the product of %s is at version %d, want %d", ev.Id, v, ev.AggregateVersion)
		}
	}
	if n := b.count(t, "SELECT count(*) FROM event_dlq"); n != 1 {
		t.Errorf("%d dead letters left, want the 1 still broken", n)
	}
	if n := b.count(t, "SELECT attempts FROM event_dlq"); n != 3 {
		t.Errorf("the still broken one has %d attempts, want 3", n)
	}

	if _, err := purge(dlq, &eventsv1.PurgeDeadLettersRequest{Ids: []string{last.Id}, All: true}); shoptest.Code(err) != connect.CodeInvalidArgument {
		t.Errorf("purge with ids and all: %v, want InvalidArgument", err)
	}
	if n, err := purge(dlq, &eventsv1.PurgeDeadLettersRequest{}); n != 0 || err != nil {
		t.Errorf("an empty purge = %d, %v; want 0", n, err)
	}
	if n, err := purge(dlq, &eventsv1.PurgeDeadLettersRequest{Ids: []string{last.Id}}); n != 1 || err != nil {
		t.Errorf("purge of the broken one = %d, %v; want 1", n, err)
	}
	b.deliver(t, poisons(uuid.NewString())["currency"], poisons(uuid.NewString())["currency"])
	if n, err := purge(dlq, &eventsv1.PurgeDeadLettersRequest{All: true}); n != 2 || err != nil {
		t.Errorf("purge all = %d, %v; want 2", n, err)
	}
}

// listDeadLetters lists all of dlq's dead letters, pageSize at a time (at
// most 10 pages).
func listDeadLetters(t *testing.T, dlq eventsv1connect.DeadLetterServiceClient, pageSize int32) []*eventsv1.DeadLetter {
	t.Helper()
	var listed []*eventsv1.DeadLetter
	token := ""
	for range 10 {
		page, err := dlq.ListDeadLetters(context.Background(), connect.NewRequest(&eventsv1.ListDeadLettersRequest{PageSize: pageSize, PageToken: token}))
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, page.Msg.DeadLetters...)
		if token = page.Msg.NextPageToken; token == "" {
			break
		}
	}
	return listed
}

// pickDeadLetter returns the dead letter of the event with id, and
// another one (nil if there is none).
func pickDeadLetter(listed []*eventsv1.DeadLetter, id string) (of, other *eventsv1.DeadLetter) {
	for _, d := range listed {
		if d.Event.GetId() == id {
			of = d
		} else {
			other = d
		}
	}
	return of, other
}

// replay replays dead letters and returns how many, failing the test on
// error.
func replay(t *testing.T, dlq eventsv1connect.DeadLetterServiceClient, req *eventsv1.ReplayDeadLettersRequest) int64 {
	t.Helper()
	resp, err := dlq.ReplayDeadLetters(context.Background(), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("ReplayDeadLetters(%v): %v", req, err)
	}
	return resp.Msg.ReplayedCount
}

// purge purges dead letters and returns how many.
func purge(dlq eventsv1connect.DeadLetterServiceClient, req *eventsv1.PurgeDeadLettersRequest) (int64, error) {
	resp, err := dlq.PurgeDeadLetters(context.Background(), connect.NewRequest(req))
	if err != nil {
		return 0, err
	}
	return resp.Msg.PurgedCount, nil
}

// TestUnstorableEventsAreDeadLettered: an event whose text the database
// cannot store (a NUL, control characters, an overlong type or name) is
// DEAD_LETTERED in a storable form with its own result, and never fails
// the call: the good events beside it are applied.
func TestUnstorableEventsAreDeadLettered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vase := b.createProduct(t, "Vase", 3000)
	b.add(t, "alice", vase, 1)
	nulUnknown := envelope("shop.events.v1.Future\x00Thing", uuid.NewString(), 1)
	nulKnown := changed(vase.Id, 7, "Vase", 100)
	nulKnown.Type = "shop.events.v1.ProductChanged\x00"
	nulName := changed(vase.Id, 8, "Va\x00se", 100)
	controlName := changed(vase.Id, 9, "Vase\x1b[31m", 100)
	longType := envelope("shop.events.v1."+strings.Repeat("X", 300), uuid.NewString(), 1)
	longName := changed(vase.Id, 10, strings.Repeat("V", 201), 100)
	good := changed(vase.Id, 2, "Vase II", 3100)
	bad := map[string]*eventsv1.Event{
		"type": nulUnknown, "type ": nulKnown, "name": nulName, "name ": controlName,
		"type  ": longType, "name  ": longName,
	}
	batch := []*eventsv1.Event{good}
	for _, ev := range bad {
		batch = append(batch, ev)
	}
	res := b.deliver(t, batch...)
	if got := res[good.Id].GetStatus(); got != accepted {
		t.Errorf("the good event = %v, want ACCEPTED", got)
	}
	for word, ev := range bad {
		r := res[ev.Id]
		if r.GetStatus() != deadLettered || !strings.Contains(r.GetReason(), strings.TrimSpace(word)) {
			t.Errorf("unstorable event (%q) = %v %q; want DEAD_LETTERED with a reason naming %q", ev.Type, r.GetStatus(), r.GetReason(), strings.TrimSpace(word))
		}
	}
	if got := b.line(t, "alice", vase.Id); got.Name != "Vase II" || got.Version != 2 {
		t.Errorf("line = %+v; want the good event applied (Vase II, version 2)", got)
	}
	if n := b.count(t, "SELECT count(*) FROM event_dlq"); n != len(bad) {
		t.Errorf("%d dead letters, want %d", n, len(bad))
	}
	// The stored dead letter keeps the event whole (its bytes).
	var body []byte
	if err := b.cartPool.QueryRow(context.Background(), "SELECT event FROM event_dlq WHERE event_id = $1", nulUnknown.Id).Scan(&body); err != nil {
		t.Fatalf("dead letter of the NUL type: %v", err)
	}
	var stored eventsv1.Event
	if err := proto.Unmarshal(body, &stored); err != nil || stored.Type != nulUnknown.Type {
		t.Errorf("stored event type = %q (%v), want %q", stored.Type, err, nulUnknown.Type)
	}
}

// TestRefusedEventFallsBackToOneByOne: when the database refuses one
// event's data although it passed the checks (here a constraint the
// checks do not know), that event is DEAD_LETTERED and the rest of its
// batch is still applied.
func TestRefusedEventFallsBackToOneByOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vase, lamp := b.createProduct(t, "Vase", 3000), b.createProduct(t, "Lamp", 1000)
	b.add(t, "alice", vase, 1)
	b.add(t, "alice", lamp, 1)
	b.exec(t, "ALTER TABLE cart_items ADD CONSTRAINT no_evil CHECK (name <> 'Evil')")
	evil, good, other := changed(vase.Id, 2, "Evil", 100), changed(lamp.Id, 2, "Lamp II", 1100), changed(uuid.NewString(), 1, "Other", 1)
	res := b.deliver(t, good, evil, other)
	if r := res[evil.Id]; r.GetStatus() != deadLettered || !strings.Contains(r.GetReason(), "constraints") {
		t.Errorf("refused event = %v %q; want DEAD_LETTERED naming the constraints", r.GetStatus(), r.GetReason())
	}
	if res[good.Id].GetStatus() != accepted || res[other.Id].GetStatus() != accepted {
		t.Errorf("the others = %v, %v; want ACCEPTED", res[good.Id].GetStatus(), res[other.Id].GetStatus())
	}
	if got := b.line(t, "alice", lamp.Id); got.Name != "Lamp II" {
		t.Errorf("lamp line = %+v; want the good event applied", got)
	}
	if got := b.line(t, "alice", vase.Id); got.Name != "Vase" || got.Version != 1 {
		t.Errorf("vase line = %+v; want it untouched", got)
	}
	if v, _ := b.known(t, vase.Id); v >= 2 {
		t.Errorf("vase mark = %d; want below 2 (the refused event left nothing behind)", v)
	}
	if n := b.count(t, "SELECT count(*) FROM event_dlq WHERE event_id = $1", evil.Id); n != 1 {
		t.Errorf("%d dead letters of the refused event, want 1", n)
	}
}
