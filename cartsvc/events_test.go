package cartsvc_test

import (
	"context"
	"errors"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
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
