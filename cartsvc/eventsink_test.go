package cartsvc_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decoupledshop/shop/cartsvc"
	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

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
