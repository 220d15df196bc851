package cartsvc_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/decoupledshop/shop/cartsvc"
	"github.com/decoupledshop/shop/cartsvc/productclient"
	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/internal/devissuer"
)

// TestProductChangedRefreshesEveryCopyOnce: a price change reaches every
// cart line and wishlist item of the product (the added price stays, so
// the cart shows price_changed) and the same event again, in another call
// or twice in one, is a DUPLICATE applied once.
func TestProductChangedRefreshesEveryCopyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lamp := b.createProduct(t, "Lamp", 1000)
	b.add(t, "alice", lamp, 2)
	b.add(t, "bob", lamp, 1)
	b.addToWishlist(t, "bob", lamp.Id)

	ev := changed(lamp.Id, lamp.Version+1, "Lamp II", 1200)
	if got := b.deliver(t, ev, ev)[ev.Id].GetStatus(); got != accepted {
		t.Fatalf("a newer ProductChanged (sent twice in one call) = %v, want ACCEPTED", got)
	}
	want := snapshot{Name: "Lamp II", Price: 1200, Added: 1000, Currency: "EUR", Version: 2, Available: true}
	for _, who := range []string{"alice", "bob"} {
		if got := b.line(t, who, lamp.Id); got != want {
			t.Errorf("%s's line = %+v, want %+v", who, got, want)
		}
	}
	if got := b.wishlistItem(t, "bob", lamp.Id); got.Name != "Lamp II" || got.Price != 1200 || got.Version != 2 {
		t.Errorf("bob's wishlist item = %+v, want Lamp II at 12.00, version 2", got)
	}
	if v, del := b.known(t, lamp.Id); v != 2 || del {
		t.Errorf("recorded version = %d (deleted %v), want 2", v, del)
	}
	// productsvc still says version 1: the cart shows the event's snapshot
	// (never older data), the price change flagged.
	if item := b.cart(t, "alice").Items[0]; item.UnitPrice.GetAmountMinor() != 1200 || !item.PriceChanged || item.AddedUnitPrice.GetAmountMinor() != 1000 {
		t.Errorf("alice's cart line = %v; want 12.00 with price_changed (added at 10.00)", item)
	}
	if got := b.catalog.ObservedVersion(uuid.MustParse(lamp.Id)); got != 2 {
		t.Errorf("the catalog cache's floor for the lamp = %d, want 2 (raised at once by the applying replica)", got)
	}

	// Redelivered: nothing happens twice.
	b.exec(t, "UPDATE cart_items SET name = 'edited' WHERE user_id = $1", devissuer.Subject("alice"))
	if got := b.statusOf(t, ev); got != duplicate {
		t.Errorf("the same event again = %v, want DUPLICATE", got)
	}
	if got := b.line(t, "alice", lamp.Id).Name; got != "edited" {
		t.Errorf("after a duplicate the line's name is %q; the duplicate must not be applied again", got)
	}
	if n := b.count(t, "SELECT count(*) FROM inbox WHERE event_id = $1", ev.Id); n != 1 {
		t.Errorf("%d inbox rows for the event, want 1", n)
	}
	if got := b.metric(t, `cartsvc_events_total{result="duplicate"}`); got != "1" {
		t.Errorf("duplicates counted: %q, want 1", got)
	}
}

// TestStaleAndReorderedEvents: an event not newer than the recorded
// version is STALE and changes nothing, whatever order events arrive in; a
// product in no cart gets its version recorded too.
func TestStaleAndReorderedEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	desk := b.createProduct(t, "Desk", 20000)
	b.add(t, "alice", desk, 1)

	v3, v2 := changed(desk.Id, 3, "Desk v3", 18000), changed(desk.Id, 2, "Desk v2", 19000)
	res := b.deliver(t, v3, v2)
	if res[v3.Id].Status != accepted || res[v2.Id].Status != stale {
		t.Fatalf("v3 then v2 = %v, %v; want ACCEPTED, STALE", res[v3.Id].Status, res[v2.Id].Status)
	}
	if got := b.statusOf(t, changed(desk.Id, 3, "Desk v3 again", 1)); got != stale {
		t.Errorf("another event at the recorded version = %v, want STALE", got)
	}
	if got := b.statusOf(t, changed(desk.Id, 1, "Desk v1", 1)); got != stale {
		t.Errorf("an event older than every snapshot = %v, want STALE", got)
	}
	if got := b.line(t, "alice", desk.Id); got.Name != "Desk v3" || got.Price != 18000 || got.Version != 3 {
		t.Errorf("line = %+v; want Desk v3 at 180.00, version 3", got)
	}
	if n := b.count(t, "SELECT count(*) FROM inbox WHERE outcome = 'stale'"); n != 3 {
		t.Errorf("%d stale events in the inbox, want 3 (a stale event is received: its redelivery is a DUPLICATE)", n)
	}

	// A product in no cart: its version is recorded, so an older event
	// arriving later is STALE.
	elsewhere := uuid.NewString()
	if got := b.statusOf(t, changed(elsewhere, 5, "Elsewhere", 100)); got != accepted {
		t.Errorf("ProductChanged of a product in no cart = %v, want ACCEPTED", got)
	}
	if v, _ := b.known(t, elsewhere); v != 5 {
		t.Errorf("recorded version of a product in no cart = %d, want 5", v)
	}
	if got := b.statusOf(t, changed(elsewhere, 4, "Elsewhere", 100)); got != stale {
		t.Errorf("an older event of it = %v, want STALE", got)
	}

	// A cart line newer than the event (added after productsvc moved on)
	// keeps its snapshot although the event raises the recorded version.
	chair := b.createProduct(t, "Chair", 5000)
	chair = b.setPrice(t, chair, 5500) // version 2
	b.add(t, "alice", chair, 1)        // line at version 2
	if got := b.statusOf(t, changed(chair.Id, 1, "Chair v1", 5000)); got != accepted {
		t.Errorf("the chair's version 1, never recorded = %v, want ACCEPTED", got)
	}
	if got := b.line(t, "alice", chair.Id); got.Version != 2 || got.Price != 5500 {
		t.Errorf("the chair's line = %+v; an older event must not overwrite a newer snapshot", got)
	}
}

// TestTombstoneKeepsProductsDeleted: ProductDeleted marks the lines and
// wishlist items unavailable, and every later event of the product, even a
// newer ProductChanged, is STALE.
func TestTombstoneKeepsProductsDeleted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	mug, tea := b.createProduct(t, "Mug", 800), b.createProduct(t, "Tea", 450)
	b.add(t, "alice", mug, 1)
	b.add(t, "alice", tea, 2)
	b.addToWishlist(t, "bob", mug.Id)

	if got := b.statusOf(t, deleted(mug.Id, 4)); got != accepted {
		t.Fatalf("ProductDeleted = %v, want ACCEPTED", got)
	}
	if got := b.line(t, "alice", mug.Id); got.Available || got.Version != 1 || got.Name != "Mug" {
		t.Errorf("line after delete = %+v; want kept with its snapshot (version 1), unavailable", got)
	}
	if got := b.wishlistItem(t, "bob", mug.Id); got.Available {
		t.Errorf("wishlist item after delete = %+v; want unavailable", got)
	}
	for _, ev := range []*eventsv1.Event{changed(mug.Id, 3, "Mug v3", 700), changed(mug.Id, 9, "Mug v9", 600), deleted(mug.Id, 10)} {
		if got := b.statusOf(t, ev); got != stale {
			t.Errorf("%s at version %d after the delete = %v, want STALE", ev.Type, ev.AggregateVersion, got)
		}
	}
	// The late version 3 (older than the tombstone) brought the snapshot
	// forward, as if it had arrived in order; nothing at or after the
	// tombstone did, and the line stayed unavailable.
	want := snapshot{Name: "Mug v3", Price: 700, Added: 800, Currency: "EUR", Version: 3}
	if got := b.line(t, "alice", mug.Id); got != want {
		t.Errorf("line after late events = %+v, want %+v", got, want)
	}
	if got := b.wishlistItem(t, "bob", mug.Id); got.Available || got.Version != 3 {
		t.Errorf("wishlist item after late events = %+v; want unavailable, snapshot at version 3", got)
	}
	if v, del := b.known(t, mug.Id); v != 4 || !del {
		t.Errorf("recorded = version %d deleted %v; want the tombstone at 4", v, del)
	}
	c := b.cart(t, "alice")
	if c.Items[0].Available || c.Items[0].Name != "Mug v3" || c.Total.GetAmountMinor() != 900 {
		t.Errorf("cart = %v; want the mug unavailable and out of the total (9.00)", c)
	}
}

// TestUnknownTypesAndCategoryChangedAreAccepted: old receivers survive new
// senders: an event of a type cartsvc does not know (here with a payload
// field this build does not know) is ACCEPTED, ignored and counted;
// CategoryChanged is ACCEPTED (cart lines hold no category). Both are
// received (a redelivery is a DUPLICATE).
func TestUnknownTypesAndCategoryChangedAreAccepted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// A newer sender's event: payload field 13, unknown here.
	future := envelope("shop.events.v1.StockChanged", uuid.NewString(), 7)
	raw, err := proto.Marshal(future)
	if err != nil {
		t.Fatal(err)
	}
	raw = protowire.AppendTag(raw, 13, protowire.BytesType)
	raw = protowire.AppendBytes(raw, []byte{0x08, 0x05})
	future = new(eventsv1.Event)
	if err := proto.Unmarshal(raw, future); err != nil {
		t.Fatal(err)
	}
	cat := envelope("shop.events.v1.CategoryChanged", uuid.NewString(), 2)
	cat.Payload = &eventsv1.Event_CategoryChanged{CategoryChanged: &eventsv1.CategoryChanged{Id: cat.AggregateId, Name: "Garden", Version: 2}}

	res := b.deliver(t, future, cat)
	if res[future.Id].Status != accepted || res[cat.Id].Status != accepted {
		t.Fatalf("unknown type = %v, CategoryChanged = %v; want both ACCEPTED", res[future.Id].Status, res[cat.Id].Status)
	}
	res = b.deliver(t, future, cat)
	if res[future.Id].Status != duplicate || res[cat.Id].Status != duplicate {
		t.Errorf("again: %v, %v; want DUPLICATE", res[future.Id].Status, res[cat.Id].Status)
	}
	if n := b.count(t, "SELECT count(*) FROM product_versions"); n != 0 {
		t.Errorf("%d product versions recorded; neither event is about a product", n)
	}
	for result, want := range map[string]string{"unknown": "1", "unused": "1", "duplicate": "2"} {
		if got := b.metric(t, `cartsvc_events_total{result="`+result+`"}`); got != want {
			t.Errorf("cartsvc_events_total{result=%q} = %q, want %s", result, got, want)
		}
	}
}

// TestInboxRetention: the janitor forgets received events after the
// retention window but keeps version marks and dead letters; a redelivery
// of a forgotten event is then STALE, still not applied twice.
func TestInboxRetention(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lamp := b.createProduct(t, "Lamp", 1000)
	b.add(t, "alice", lamp, 1)
	old := changed(lamp.Id, 2, "Lamp II", 1100)
	b.statusOf(t, old)
	b.statusOf(t, poisons(lamp.Id)["currency"])
	b.clock.Advance(cartsvc.DefaultInboxRetention - time.Minute)
	recent := changed(uuid.NewString(), 1, "Recent", 10)
	b.statusOf(t, recent)
	b.clock.Advance(2 * time.Minute)

	n, err := b.svc.PruneInbox(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("PruneInbox = %d, %v; want the 1 event older than the retention", n, err)
	}
	if b.count(t, "SELECT count(*) FROM inbox WHERE event_id = $1", recent.Id) != 1 {
		t.Errorf("a recent event was pruned")
	}
	if v, _ := b.known(t, lamp.Id); v != 2 {
		t.Errorf("recorded version after pruning = %d, want 2 (marks stay)", v)
	}
	if n := b.count(t, "SELECT count(*) FROM event_dlq"); n != 1 {
		t.Errorf("%d dead letters after pruning, want 1 (kept until replayed or purged)", n)
	}
	b.exec(t, "UPDATE cart_items SET name = 'edited'")
	if got := b.statusOf(t, old); got != stale {
		t.Errorf("a pruned event redelivered = %v, want STALE", got)
	}
	if got := b.line(t, "alice", lamp.Id).Name; got != "edited" {
		t.Errorf("the pruned event was applied again (name %q)", got)
	}
}

// TestVersionsReachOtherReplicas: a second replica on the same database
// learns every version the first applies: those applied before it listened
// (caught up when it connects) and those applied after (notified).
func TestVersionsReachOtherReplicas(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p1, p2 := uuid.New(), uuid.New()
	b.statusOf(t, changed(p1.String(), 3, "Before", 100))

	other := b.secondReplica(t)
	listen(t, other.svc, b.cartDBURL)
	eventually(t, "the second replica caught up with version 3", func() bool { return other.catalog.ObservedVersion(p1) == 3 })
	b.statusOf(t, deleted(p2.String(), 8))
	eventually(t, "the second replica was told of the tombstone at 8", func() bool { return other.catalog.ObservedVersion(p2) == 8 })
	if got := b.statusOf(t, changed(p2.String(), 2, "Late", 100)); got != stale {
		t.Fatalf("late event = %v", got)
	}
	// A full batch: its marks do not fit in one notification's payload,
	// which then tells the replicas to read them.
	var batch []*eventsv1.Event
	for range cartsvc.MaxEventBatch {
		batch = append(batch, changed(uuid.NewString(), 4, "Many", 100))
	}
	b.deliver(t, batch...)
	for _, ev := range batch {
		id := uuid.MustParse(ev.AggregateId)
		eventually(t, "the second replica was told of a full batch", func() bool { return other.catalog.ObservedVersion(id) == 4 })
	}
}

// replica is another cartsvc replica's service and catalog cache.
type replica struct {
	svc     *cartsvc.Service
	catalog *productclient.Client
}

// secondReplica returns another cartsvc replica on the bundle's database.
func (b *testBundle) secondReplica(t *testing.T) replica {
	t.Helper()
	cat, err := productclient.New(productclient.Config{BaseURL: b.products.URL(), Now: b.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cat.Close)
	return replica{svc: cartsvc.NewService(b.cartPool, cat, cartsvc.Options{Now: b.clock.Now}), catalog: cat}
}

// TestBatchResultsFollowTheEvents: a call's results come one per distinct
// event id in the order the ids first appear, and one product's events in
// a call are applied in their order (none is stale), different products'
// events together.
func TestBatchResultsFollowTheEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	products := make([]string, 6)
	for i := range products {
		products[i] = uuid.NewString()
	}
	var batch []*eventsv1.Event
	for v := int64(1); v <= 5; v++ {
		for _, p := range products {
			batch = append(batch, changed(p, v, "Thing", 100*v))
		}
	}
	batch = append(batch, batch[3]) // a repeat, answered once
	resp, err := sink(b.cartURL, b.tokens["service"]).DeliverEvents(context.Background(), connect.NewRequest(&eventsv1.DeliverEventsRequest{Events: batch}))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Msg.Results) != len(batch)-1 {
		t.Fatalf("%d results for %d distinct events", len(resp.Msg.Results), len(batch)-1)
	}
	for i, r := range resp.Msg.Results {
		if r.EventId != batch[i].Id || r.Status != accepted {
			t.Errorf("result %d = %s %v; want %s ACCEPTED (in order, none stale)", i, r.EventId, r.Status, batch[i].Id)
		}
	}
	for _, p := range products {
		if v, _ := b.known(t, p); v != 5 {
			t.Errorf("product %s at version %d, want 5", p, v)
		}
	}
}
