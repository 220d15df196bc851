package cartsvc

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/internal/money"
)

// The event types cartsvc knows: the full names of the payload messages.
var (
	typeProductChanged  = string(proto.MessageName(&eventsv1.ProductChanged{}))
	typeProductDeleted  = string(proto.MessageName(&eventsv1.ProductDeleted{}))
	typeCategoryChanged = string(proto.MessageName(&eventsv1.CategoryChanged{}))
)

// outcome is what receiving one event came to.
type outcome string

// Outcomes, also the values of the inbox's outcome column and of the
// result label of the cartsvc_events_total counter.
const (
	// outcomeApplied: a product event newer than anything known; its cart
	// lines and wishlist items now hold its state. ACCEPTED.
	outcomeApplied outcome = "applied"
	// outcomeUnused: a known type cartsvc keeps nothing of
	// (CategoryChanged: cart lines hold no category). ACCEPTED.
	outcomeUnused outcome = "unused"
	// outcomeUnknown: a type this build does not know, ignored so that old
	// receivers survive new senders. ACCEPTED.
	outcomeUnknown outcome = "unknown"
	// outcomeStale: not newer than the product's recorded version, or the
	// product is deleted. STALE.
	outcomeStale outcome = "stale"
	// outcomeDuplicate: the event id is in the inbox. DUPLICATE.
	outcomeDuplicate outcome = "duplicate"
	// outcomeDeadLettered: poison, stored in event_dlq. DEAD_LETTERED.
	outcomeDeadLettered outcome = "dead_lettered"
)

func (o outcome) status() eventsv1.DeliveryStatus {
	switch o {
	case outcomeApplied, outcomeUnused, outcomeUnknown:
		return eventsv1.DeliveryStatus_DELIVERY_STATUS_ACCEPTED
	case outcomeStale:
		return eventsv1.DeliveryStatus_DELIVERY_STATUS_STALE
	case outcomeDuplicate:
		return eventsv1.DeliveryStatus_DELIVERY_STATUS_DUPLICATE
	case outcomeDeadLettered:
		return eventsv1.DeliveryStatus_DELIVERY_STATUS_DEAD_LETTERED
	}
	return eventsv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED
}

// eventKind says how an event is applied.
type eventKind int

const (
	kindUnknown eventKind = iota
	kindProductChanged
	kindProductDeleted
	kindCategoryChanged
)

// event is an event that passed checkEvent.
type event struct {
	msg       *eventsv1.Event
	id        uuid.UUID
	kind      eventKind
	aggregate pgtype.UUID // the aggregate id, when it is a UUID
	version   int64       // aggregate_version
	// ProductChanged's state.
	name     string
	price    int64
	currency string
}

// checkEvent checks ev against the event contract and returns it ready to
// apply, or the reason it is poison: safe to show to operators, and
// quoting only values it has checked or shortened.
//
// Poison is an event whose id is not a UUID, whose type is empty, longer
// than maxStoredType bytes, not text (see textProblem) or does not match
// its payload, of a known type whose payload is missing, or whose
// payload contradicts the envelope (id ≠ aggregate_id, version ≠
// aggregate_version, version < 1); a ProductChanged must also have a name
// (text of at most maxName characters) and a price in the shop currency within 0..money.MaxPriceMinor. An event
// with no payload and a type this build does not know is kindUnknown, not
// poison.
func (s *Service) checkEvent(ev *eventsv1.Event) (event, string) {
	e := event{msg: ev, version: ev.GetAggregateVersion()}
	id, ok := parseUUID(ev.GetId())
	if !ok {
		return e, "id: must be a UUID"
	}
	e.id = id
	if agg, ok := parseUUID(ev.GetAggregateId()); ok {
		e.aggregate = pgtype.UUID{Bytes: agg, Valid: true}
	}
	typ := ev.GetType()
	if typ == "" {
		return e, "type: must not be empty"
	}
	if problem := textProblem(typ, maxStoredType); problem != "" {
		return e, "type: " + problem
	}
	var want string
	switch p := ev.GetPayload().(type) {
	case nil:
		switch typ {
		case typeProductChanged, typeProductDeleted, typeCategoryChanged:
			return e, fmt.Sprintf("payload: a %s event needs its payload", typ)
		}
		e.kind = kindUnknown
		return e, ""
	case *eventsv1.Event_ProductChanged:
		want, e.kind = typeProductChanged, kindProductChanged
		pc := p.ProductChanged
		if reason := checkAggregate(e, "product_changed", pc.GetId(), pc.GetVersion()); reason != "" {
			return e, reason
		}
		if pc.GetName() == "" {
			return e, "product_changed.name: must not be empty"
		}
		if problem := textProblem(pc.GetName(), maxName); problem != "" {
			return e, "product_changed.name: " + problem
		}
		price := pc.GetPrice()
		switch {
		case price == nil:
			return e, "product_changed.price: is required"
		case price.GetCurrencyCode() != string(s.currency):
			return e, fmt.Sprintf("product_changed.price: currency %s is not the shop currency %s", short(price.GetCurrencyCode()), s.currency)
		case price.GetAmountMinor() < 0 || price.GetAmountMinor() > money.MaxPriceMinor:
			return e, fmt.Sprintf("product_changed.price: amount_minor %d is outside 0..%d", price.GetAmountMinor(), int64(money.MaxPriceMinor))
		}
		e.name, e.price, e.currency = pc.GetName(), price.GetAmountMinor(), price.GetCurrencyCode()
	case *eventsv1.Event_ProductDeleted:
		want, e.kind = typeProductDeleted, kindProductDeleted
		pd := p.ProductDeleted
		if reason := checkAggregate(e, "product_deleted", pd.GetId(), pd.GetVersion()); reason != "" {
			return e, reason
		}
	case *eventsv1.Event_CategoryChanged:
		want, e.kind = typeCategoryChanged, kindCategoryChanged
		cc := p.CategoryChanged
		if reason := checkAggregate(e, "category_changed", cc.GetId(), cc.GetVersion()); reason != "" {
			return e, reason
		}
	}
	if typ != want {
		return e, fmt.Sprintf("type: %s does not match the %s payload", short(typ), want)
	}
	return e, ""
}

// checkAggregate checks that a payload names the event's aggregate at its
// version.
func checkAggregate(e event, payload, id string, version int64) string {
	pid, ok := parseUUID(id)
	switch {
	case !e.aggregate.Valid:
		return "aggregate_id: must be a UUID"
	case !ok || pid != uuid.UUID(e.aggregate.Bytes):
		return payload + ".id: must equal aggregate_id"
	case e.version < 1:
		return fmt.Sprintf("aggregate_version: must be positive, got %d", e.version)
	case version != e.version:
		return fmt.Sprintf("%s.version: %d must equal aggregate_version %d", payload, version, e.version)
	}
	return ""
}

// parseUUID accepts the canonical 36-character form of any UUID but the
// nil one.
func parseUUID(s string) (uuid.UUID, bool) {
	if len(s) != 36 {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(s)
	return id, err == nil && id != uuid.Nil
}

// short quotes s, cut to 40 characters, for a reason text.
func short(s string) string {
	const n = 40
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n]) + "…"
	}
	return strconv.Quote(s)
}

// Bounds of the event texts cartsvc stores.
const (
	// maxStoredType bounds an event's type, in bytes (the inbox's and the
	// dead letters' type column; a dead letter keeps the event itself
	// whole).
	maxStoredType = 200
	// maxName bounds a product name, in characters (as productsvc does).
	maxName = 200
)

// textProblem says why s is not text the database stores as it is (invalid
// UTF-8, a NUL or another control character), or is longer than max
// characters; "" when it is fine.
func textProblem(s string, max int) string {
	switch {
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case strings.ContainsFunc(s, unicode.IsControl):
		return "must not contain control characters"
	case utf8.RuneCountInString(s) > max:
		return fmt.Sprintf("must be at most %d characters", max)
	}
	return ""
}

// storedText is s as the database can store it in a text column: as it is
// when it is text (see textProblem), else quoted with Go escapes; then cut
// to max bytes on a character boundary. Dead letters use it for the texts
// of events that failed their checks.
func storedText(s string, max int) string {
	if textProblem(s, len(s)) != "" {
		s = strconv.QuoteToASCII(s)
	}
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// eventMetrics counts what cartsvc did with the events it received.
type eventMetrics struct {
	results *prometheus.CounterVec
	refused *prometheus.CounterVec
}

func newEventMetrics() *eventMetrics {
	return &eventMetrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartsvc_events_total",
			Help: "Events received through EventSinkService or replayed from the dead-letter queue, by result: " +
				"applied, stale, duplicate, dead_lettered, unused (a known type cartsvc keeps nothing of) " +
				"and unknown (a type this build does not know, accepted and ignored).",
		}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartsvc_event_calls_refused_total",
			Help: "DeliverEvents calls refused with ResourceExhausted, by reason: rate (the caller's rate limit) or size (too many events or bytes).",
		}, []string{"reason"}),
	}
}

func (m *eventMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.results, m.refused}
}
