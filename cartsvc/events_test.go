package cartsvc_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/decoupledshop/shop/cartsvc"
	"github.com/decoupledshop/shop/cartsvc/productclient"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/internal/telemetry"
)

const (
	accepted     = eventsv1.DeliveryStatus_DELIVERY_STATUS_ACCEPTED
	duplicate    = eventsv1.DeliveryStatus_DELIVERY_STATUS_DUPLICATE
	stale        = eventsv1.DeliveryStatus_DELIVERY_STATUS_STALE
	deadLettered = eventsv1.DeliveryStatus_DELIVERY_STATUS_DEAD_LETTERED
)

// sink is cartsvc's EventSinkService at url for a token.
func sink(url, token string) eventsv1connect.EventSinkServiceClient {
	return eventsv1connect.NewEventSinkServiceClient(shoptest.HTTPClient(), url, connect.WithInterceptors(shoptest.Bearer(token)))
}

func (b *testBundle) deadLetters(who string) eventsv1connect.DeadLetterServiceClient {
	return eventsv1connect.NewDeadLetterServiceClient(shoptest.HTTPClient(), b.cartURL, connect.WithInterceptors(shoptest.Bearer(b.tokens[who])))
}

// deliverTo sends events to the cartsvc at url as the relay's client and
// returns the result of each event id, failing the test unless there is
// exactly one result per distinct id.
func (b *testBundle) deliverTo(t *testing.T, url string, events ...*eventsv1.Event) map[string]*eventsv1.DeliveryResult {
	t.Helper()
	resp, err := sink(url, b.tokens["service"]).DeliverEvents(context.Background(), connect.NewRequest(&eventsv1.DeliverEventsRequest{Events: events}))
	if err != nil {
		t.Fatalf("DeliverEvents(%d events): %v", len(events), err)
	}
	ids := map[string]bool{}
	for _, ev := range events {
		ids[ev.GetId()] = true
	}
	out := map[string]*eventsv1.DeliveryResult{}
	for _, r := range resp.Msg.Results {
		if out[r.EventId] != nil {
			t.Fatalf("two results for event %s", r.EventId)
		}
		out[r.EventId] = r
	}
	if len(out) != len(ids) || len(resp.Msg.Results) != len(ids) {
		t.Fatalf("DeliverEvents answered %d results for %d distinct events", len(resp.Msg.Results), len(ids))
	}
	return out
}

func (b *testBundle) deliver(t *testing.T, events ...*eventsv1.Event) map[string]*eventsv1.DeliveryResult {
	t.Helper()
	return b.deliverTo(t, b.cartURL, events...)
}

// statusOf delivers one event and returns its status.
func (b *testBundle) statusOf(t *testing.T, ev *eventsv1.Event) eventsv1.DeliveryStatus {
	t.Helper()
	return b.deliver(t, ev)[ev.Id].GetStatus()
}

func envelope(typ, aggregate string, version int64) *eventsv1.Event {
	return &eventsv1.Event{
		Id: uuid.NewString(), Type: typ, AggregateId: aggregate, AggregateVersion: version,
		OccurredAt: timestamppb.New(start),
	}
}

// changed is a ProductChanged event of product id at version.
func changed(id string, version int64, name string, price int64) *eventsv1.Event {
	ev := envelope("shop.events.v1.ProductChanged", id, version)
	ev.Payload = &eventsv1.Event_ProductChanged{ProductChanged: &eventsv1.ProductChanged{
		Id: id, Sku: "SKU-1", Name: name, CategoryId: uuid.NewString(), CategoryName: "Things",
		Price: eur(price), Version: version, UpdateTime: timestamppb.New(start),
	}}
	return ev
}

// deleted is a ProductDeleted event of product id at version.
func deleted(id string, version int64) *eventsv1.Event {
	ev := envelope("shop.events.v1.ProductDeleted", id, version)
	ev.Payload = &eventsv1.Event_ProductDeleted{ProductDeleted: &eventsv1.ProductDeleted{Id: id, Version: version}}
	return ev
}

// snapshot is a cart line's or wishlist item's stored product data (users
// by name).
type snapshot struct {
	Name      string
	Price     int64
	Added     int64 // cart lines only
	Currency  string
	Version   int64
	Available bool
}

func (b *testBundle) line(t *testing.T, user, productID string) snapshot {
	t.Helper()
	var s snapshot
	err := b.cartPool.QueryRow(context.Background(),
		`SELECT name, unit_price_minor, added_unit_price_minor, currency_code, product_version, available
		 FROM cart_items WHERE user_id = $1 AND product_id = $2`, devissuer.Subject(user), productID).
		Scan(&s.Name, &s.Price, &s.Added, &s.Currency, &s.Version, &s.Available)
	if err != nil {
		t.Fatalf("cart line of %s for %s: %v", user, productID, err)
	}
	return s
}

func (b *testBundle) wishlistItem(t *testing.T, user, productID string) snapshot {
	t.Helper()
	var s snapshot
	err := b.cartPool.QueryRow(context.Background(),
		`SELECT name, price_minor, currency_code, product_version, available
		 FROM wishlist_items WHERE user_id = $1 AND product_id = $2`, devissuer.Subject(user), productID).
		Scan(&s.Name, &s.Price, &s.Currency, &s.Version, &s.Available)
	if err != nil {
		t.Fatalf("wishlist item of %s for %s: %v", user, productID, err)
	}
	return s
}

// known returns the product's recorded version and tombstone (0, false if
// none).
func (b *testBundle) known(t *testing.T, productID string) (int64, bool) {
	t.Helper()
	var v int64
	var deleted bool
	err := b.cartPool.QueryRow(context.Background(), "SELECT version, deleted FROM product_versions WHERE product_id = $1", productID).Scan(&v, &deleted)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	return v, deleted
}

func (b *testBundle) addToWishlist(t *testing.T, who, productID string) {
	t.Helper()
	if _, err := b.wishlists(who).AddWishlistItem(context.Background(), connect.NewRequest(&cartv1.AddWishlistItemRequest{ProductId: productID})); err != nil {
		t.Fatalf("AddWishlistItem: %v", err)
	}
}

// metric returns the value of a sample line of cartsvc's metrics (what
// the admin listener's /metrics serves), "" if absent.
func (b *testBundle) metric(t *testing.T, sample string) string {
	t.Helper()
	return telemetry.Sample(b.registry, sample)
}

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

// TestEventSinkRefusals: only service tokens with events:write may
// deliver; batches over 256 events or 512 KiB are ResourceExhausted, and
// nothing of a refused call is applied.
func TestEventSinkRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ev := changed(uuid.NewString(), 1, "Thing", 100)
	for who, want := range map[string]connect.Code{
		"alice": connect.CodePermissionDenied, "admin": connect.CodePermissionDenied,
		"noscope": connect.CodePermissionDenied, "none": connect.CodeUnauthenticated,
	} {
		_, err := sink(b.cartURL, b.tokens[who]).DeliverEvents(context.Background(), connect.NewRequest(&eventsv1.DeliverEventsRequest{Events: []*eventsv1.Event{ev}}))
		if got := shoptest.Code(err); got != want {
			t.Errorf("DeliverEvents as %s: %v, want %v", who, err, want)
		}
	}
	many := make([]*eventsv1.Event, cartsvc.MaxEventBatch+1)
	for i := range many {
		many[i] = changed(uuid.NewString(), 1, "Thing", 100)
	}
	huge := []*eventsv1.Event{changed(uuid.NewString(), 1, strings.Repeat("x", 300<<10), 1), changed(uuid.NewString(), 1, strings.Repeat("y", 300<<10), 1)}
	for name, events := range map[string][]*eventsv1.Event{"257 events": many, "600 KiB": huge} {
		_, err := sink(b.cartURL, b.tokens["service"]).DeliverEvents(context.Background(), connect.NewRequest(&eventsv1.DeliverEventsRequest{Events: events}))
		if got := shoptest.Code(err); got != connect.CodeResourceExhausted {
			t.Errorf("DeliverEvents with %s: %v, want ResourceExhausted", name, err)
		}
	}
	if n := b.count(t, "SELECT count(*) FROM inbox") + b.count(t, "SELECT count(*) FROM event_dlq"); n != 0 {
		t.Errorf("%d events recorded from refused calls, want 0", n)
	}
	if got := b.metric(t, `cartsvc_event_calls_refused_total{reason="size"}`); got != "2" {
		t.Errorf("calls refused for size: %q, want 2", got)
	}
	// Exactly the limits pass.
	full := many[:cartsvc.MaxEventBatch]
	if res := b.deliver(t, full...); len(res) != cartsvc.MaxEventBatch {
		t.Errorf("a call of %d events answered %d results", cartsvc.MaxEventBatch, len(res))
	}
}

// TestEventRateIsLimitedPerCaller: a caller over its rate is refused with
// ResourceExhausted (nothing applied) while another caller is not; tokens
// come back with time.
func TestEventRateIsLimitedPerCaller(t *testing.T) {
	t.Parallel()
	b := setup(t, withService(func(o *cartsvc.Options) { o.EventRate, o.EventBurst = 10, 3 }))
	events := func(n int) []*eventsv1.Event {
		out := make([]*eventsv1.Event, n)
		for i := range out {
			out[i] = changed(uuid.NewString(), 1, "Thing", 100)
		}
		return out
	}
	call := func(who string, evs []*eventsv1.Event) error {
		_, err := sink(b.cartURL, b.tokens[who]).DeliverEvents(context.Background(), connect.NewRequest(&eventsv1.DeliverEventsRequest{Events: evs}))
		return err
	}
	if err := call("service", events(3)); err != nil {
		t.Fatalf("3 events within a burst of 3: %v", err)
	}
	refused := events(1)
	if err := call("service", refused); shoptest.Code(err) != connect.CodeResourceExhausted {
		t.Fatalf("a 4th event at once: %v, want ResourceExhausted", err)
	}
	if n := b.count(t, "SELECT count(*) FROM inbox WHERE event_id = $1", refused[0].Id); n != 0 {
		t.Errorf("the refused event was received")
	}
	if err := call("other", events(3)); err != nil {
		t.Errorf("another caller's 3 events: %v; the limit is per caller", err)
	}
	if err := call("service", events(4)); shoptest.Code(err) != connect.CodeResourceExhausted {
		t.Errorf("a batch above the burst: %v, want ResourceExhausted (the sender halves it)", err)
	}
	b.clock.Advance(time.Second) // 10 tokens, capped at the burst of 3
	if err := call("service", events(3)); err != nil {
		t.Errorf("after a second: %v, want the burst available again", err)
	}
	if got := b.metric(t, `cartsvc_event_calls_refused_total{reason="rate"}`); got != "2" {
		t.Errorf("calls refused for rate: %q, want 2", got)
	}
}

// TestDeliverEventsIsUnavailableWhenTheDatabaseIs: only a failure that may
// pass fails the whole call, with Unavailable and no internals.
func TestDeliverEventsIsUnavailableWhenTheDatabaseIs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool, err := pgxpool.New(context.Background(), b.cartDBURL)
	if err != nil {
		t.Fatal(err)
	}
	pool.Close() // as good as a database that went away
	url := b.serveCart(t, cartsvc.NewService(pool, b.catalog, cartsvc.Options{Now: b.clock.Now}))
	_, err = sink(url, b.tokens["service"]).DeliverEvents(context.Background(), connect.NewRequest(&eventsv1.DeliverEventsRequest{
		Events: []*eventsv1.Event{changed(uuid.NewString(), 1, "Thing", 100)},
	}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnavailable || strings.Contains(ce.Message(), "pool") {
		t.Errorf("DeliverEvents with the database gone: %v; want Unavailable without internals", err)
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
	var listed []*eventsv1.DeadLetter
	token := ""
	for range 10 {
		page, err := dlq.ListDeadLetters(ctx, connect.NewRequest(&eventsv1.ListDeadLettersRequest{PageSize: 3, PageToken: token}))
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, page.Msg.DeadLetters...)
		if token = page.Msg.NextPageToken; token == "" {
			break
		}
	}
	if len(listed) != 4 {
		t.Fatalf("listed %d dead letters in pages of 3, want 4", len(listed))
	}
	// Events of one batch are applied concurrently, so their dead letters'
	// order is not the delivery order: find the broken one by its event id.
	var last, fixable *eventsv1.DeadLetter // the broken one, and a USD one
	for _, d := range listed {
		if d.Event.GetId() == broken.Id {
			last = d
		} else {
			fixable = d
		}
	}
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
	replay := func(c eventsv1connect.DeadLetterServiceClient, req *eventsv1.ReplayDeadLettersRequest) int64 {
		t.Helper()
		resp, err := c.ReplayDeadLetters(ctx, connect.NewRequest(req))
		if err != nil {
			t.Fatalf("ReplayDeadLetters(%v): %v", req, err)
		}
		return resp.Msg.ReplayedCount
	}
	if n := replay(dlq, &eventsv1.ReplayDeadLettersRequest{}); n != 0 || b.count(t, "SELECT count(*) FROM event_dlq") != 4 {
		t.Errorf("an empty replay replayed %d", n)
	}
	if n := replay(dlq, &eventsv1.ReplayDeadLettersRequest{All: true}); n != 0 {
		t.Errorf("replaying poison to the same receiver replayed %d, want 0", n)
	}
	if n := b.count(t, "SELECT count(*) FROM event_dlq WHERE attempts = 2"); n != 4 {
		t.Errorf("%d dead letters with 2 attempts after a failed replay, want 4", n)
	}

	// The fix: the shop now sells in USD (a receiver configured so, on the
	// same database).
	fixed := b.serveCart(t, cartsvc.NewService(b.cartPool, b.catalog, cartsvc.Options{Currency: "USD", Now: b.clock.Now}))
	fixedDLQ := eventsv1connect.NewDeadLetterServiceClient(shoptest.HTTPClient(), fixed, connect.WithInterceptors(shoptest.Bearer(b.tokens["admin"])))
	if n := replay(fixedDLQ, &eventsv1.ReplayDeadLettersRequest{Ids: []string{fixable.Id, uuid.NewString()}}); n != 1 {
		t.Errorf("replaying one fixed dead letter (and an unknown id) replayed %d, want 1", n)
	}
	// A redelivery of a dead-lettered event that the fixed receiver
	// accepts resolves its dead letter too.
	if got := b.deliverTo(t, fixed, usd[0])[usd[0].Id].Status; got != accepted && got != duplicate {
		t.Errorf("redelivering a dead-lettered event to the fixed receiver = %v", got)
	}
	if n := replay(fixedDLQ, &eventsv1.ReplayDeadLettersRequest{All: true}); n < 1 {
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

	purge := func(req *eventsv1.PurgeDeadLettersRequest) (int64, error) {
		resp, err := dlq.PurgeDeadLetters(ctx, connect.NewRequest(req))
		if err != nil {
			return 0, err
		}
		return resp.Msg.PurgedCount, nil
	}
	if _, err := purge(&eventsv1.PurgeDeadLettersRequest{Ids: []string{last.Id}, All: true}); shoptest.Code(err) != connect.CodeInvalidArgument {
		t.Errorf("purge with ids and all: %v, want InvalidArgument", err)
	}
	if n, err := purge(&eventsv1.PurgeDeadLettersRequest{}); n != 0 || err != nil {
		t.Errorf("an empty purge = %d, %v; want 0", n, err)
	}
	if n, err := purge(&eventsv1.PurgeDeadLettersRequest{Ids: []string{last.Id}}); n != 1 || err != nil {
		t.Errorf("purge of the broken one = %d, %v; want 1", n, err)
	}
	b.deliver(t, poisons(uuid.NewString())["currency"], poisons(uuid.NewString())["currency"])
	if n, err := purge(&eventsv1.PurgeDeadLettersRequest{All: true}); n != 2 || err != nil {
		t.Errorf("purge all = %d, %v; want 2", n, err)
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		other.svc.ListenForVersions(ctx, b.cartDBURL)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
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
