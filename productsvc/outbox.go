package productsvc

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/telemetry"
)

// Publisher records the events of a catalog change inside the transaction
// that makes the change, so a change and its events commit or roll back
// together. The catalog calls it after every write, in the same pgx.Tx.
type Publisher interface {
	// CategoryChanged records a category's new state (create or update).
	CategoryChanged(ctx context.Context, tx pgx.Tx, c productdb.Category) error
	// ProductsChanged records the full new state of each product (create,
	// update, or one per product of a renamed category).
	ProductsChanged(ctx context.Context, tx pgx.Tx, products []productdb.Product) error
	// ProductDeleted records a product's tombstone at version.
	ProductDeleted(ctx context.Context, tx pgx.Tx, id uuid.UUID, version int64) error
}

// Event type names: the full names of the payload messages.
var (
	TypeProductChanged  = string(proto.MessageName(&eventsv1.ProductChanged{}))
	TypeProductDeleted  = string(proto.MessageName(&eventsv1.ProductDeleted{}))
	TypeCategoryChanged = string(proto.MessageName(&eventsv1.CategoryChanged{}))
)

// Outbox is the Publisher of the transactional outbox (docs/EVENTS.md): it
// inserts each event into the outbox table once per subscriber, with one
// statement per call, in the caller's transaction. The relay delivers the
// rows after the transaction commits; a rollback leaves no row behind.
//
// Each event gets a fresh UUID, its type name, the aggregate's id and
// version after the change, the time of the change (the aggregate's
// update_time; the outbox clock for a deletion) and the W3C traceparent of
// the span in ctx (the request's, see telemetry.Traceparent), if any.
type Outbox struct {
	subscribers []string
	now         func() time.Time
	newID       func() uuid.UUID
}

// NewOutbox returns an Outbox recording events for subscribers (names as
// relay.ParseSubscribers accepts them; none records nothing). now and
// newID may be nil for the wall clock and random UUIDs; new rows are due
// for delivery at now().
func NewOutbox(subscribers []string, now func() time.Time, newID func() uuid.UUID) *Outbox {
	if now == nil {
		now = time.Now
	}
	if newID == nil {
		newID = uuid.New
	}
	return &Outbox{subscribers: subscribers, now: now, newID: newID}
}

// Subscribers are the names the Outbox queues events for.
func (o *Outbox) Subscribers() []string { return o.subscribers }

// CategoryChanged records a CategoryChanged event.
func (o *Outbox) CategoryChanged(ctx context.Context, tx pgx.Tx, c productdb.Category) error {
	return o.insert(ctx, tx, []pending{{
		aggregate: c.ID, occurred: c.UpdateTime,
		event: &eventsv1.Event{
			Type: TypeCategoryChanged, AggregateVersion: c.Version,
			Payload: &eventsv1.Event_CategoryChanged{CategoryChanged: &eventsv1.CategoryChanged{
				Id: c.ID.String(), Name: c.Name, Version: c.Version,
			}},
		},
	}})
}

// ProductsChanged records one ProductChanged event per product, all in one
// insert.
func (o *Outbox) ProductsChanged(ctx context.Context, tx pgx.Tx, products []productdb.Product) error {
	events := make([]pending, len(products))
	for i, p := range products {
		events[i] = pending{
			aggregate: p.ID, occurred: p.UpdateTime,
			event: &eventsv1.Event{
				Type: TypeProductChanged, AggregateVersion: p.Version,
				Payload: &eventsv1.Event_ProductChanged{ProductChanged: &eventsv1.ProductChanged{
					Id: p.ID.String(), Sku: p.Sku, Name: p.Name,
					CategoryId: p.CategoryID.String(), CategoryName: p.CategoryName,
					Price:   &typev1.Money{CurrencyCode: p.CurrencyCode, AmountMinor: p.PriceMinor},
					Version: p.Version, UpdateTime: timestamppb.New(p.UpdateTime),
				}},
			},
		}
	}
	return o.insert(ctx, tx, events)
}

// ProductDeleted records a ProductDeleted event (a tombstone at version).
func (o *Outbox) ProductDeleted(ctx context.Context, tx pgx.Tx, id uuid.UUID, version int64) error {
	return o.insert(ctx, tx, []pending{{
		aggregate: id, occurred: o.now(),
		event: &eventsv1.Event{
			Type: TypeProductDeleted, AggregateVersion: version,
			Payload: &eventsv1.Event_ProductDeleted{ProductDeleted: &eventsv1.ProductDeleted{
				Id: id.String(), Version: version,
			}},
		},
	}})
}

// pending is an event with its type, version and payload set; insert gives
// it the rest.
type pending struct {
	aggregate uuid.UUID
	occurred  time.Time
	event     *eventsv1.Event
}

func (o *Outbox) insert(ctx context.Context, tx pgx.Tx, events []pending) error {
	if len(o.subscribers) == 0 || len(events) == 0 {
		return nil
	}
	trace := telemetry.Traceparent(ctx)
	p := productdb.InsertOutboxEventsParams{
		Now:               o.now(),
		Subscribers:       o.subscribers,
		EventIds:          make([]uuid.UUID, len(events)),
		Types:             make([]string, len(events)),
		AggregateIds:      make([]uuid.UUID, len(events)),
		AggregateVersions: make([]int64, len(events)),
		OccurredAts:       make([]time.Time, len(events)),
		Events:            make([][]byte, len(events)),
	}
	for i, e := range events {
		id := o.newID()
		ev := e.event
		ev.Id = id.String()
		ev.AggregateId = e.aggregate.String()
		ev.OccurredAt = timestamppb.New(e.occurred)
		ev.Traceparent = trace
		b, err := proto.Marshal(ev)
		if err != nil {
			return fmt.Errorf("outbox: encode %s: %w", ev.Type, err)
		}
		p.EventIds[i] = id
		p.Types[i] = ev.Type
		p.AggregateIds[i] = e.aggregate
		p.AggregateVersions[i] = ev.AggregateVersion
		p.OccurredAts[i] = e.occurred
		p.Events[i] = b
	}
	if _, err := productdb.New(tx).InsertOutboxEvents(ctx, p); err != nil {
		return fmt.Errorf("outbox: insert %d events: %w", len(events), err)
	}
	return nil
}
