package cartsvc

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
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
// payload contradicts the envelope (see checkPayload). An event with no
// payload and a type this build does not know is kindUnknown, not poison.
func (s *Service) checkEvent(ev *eventsv1.Event) (event, string) {
	e := event{msg: ev, version: ev.GetAggregateVersion()}
	id, err := parseID("id", ev.GetId())
	if err != nil {
		return e, "id: must be a UUID"
	}
	e.id = id
	if agg, err := parseID("aggregate_id", ev.GetAggregateId()); err == nil {
		e.aggregate = pgtype.UUID{Bytes: agg, Valid: true}
	}
	typ := ev.GetType()
	if typ == "" {
		return e, "type: must not be empty"
	}
	if problem := textProblem(typ, maxStoredType); problem != "" {
		return e, "type: " + problem
	}
	if ev.GetPayload() == nil {
		switch typ {
		case typeProductChanged, typeProductDeleted, typeCategoryChanged:
			return e, fmt.Sprintf("payload: a %s event needs its payload", typ)
		}
		e.kind = kindUnknown
		return e, ""
	}
	want, reason := s.checkPayload(&e)
	if reason != "" {
		return e, reason
	}
	if typ != want {
		return e, fmt.Sprintf("type: %s does not match the %s payload", short(typ), want)
	}
	return e, ""
}

// checkPayload sets e's kind and, for a ProductChanged, its state from
// e's payload, and returns the event type the payload needs, or the
// reason the payload is poison: it must name the event's aggregate at its
// version (checkAggregate), and a ProductChanged must also have a name
// (text of at most maxName characters) and a price in the shop currency
// within 0..money.MaxPriceMinor.
func (s *Service) checkPayload(e *event) (want, reason string) {
	switch p := e.msg.GetPayload().(type) {
	case *eventsv1.Event_ProductChanged:
		e.kind = kindProductChanged
		pc := p.ProductChanged
		if reason := checkAggregate(*e, "product_changed", pc.GetId(), pc.GetVersion()); reason != "" {
			return typeProductChanged, reason
		}
		return typeProductChanged, s.checkProductState(e, pc)
	case *eventsv1.Event_ProductDeleted:
		e.kind = kindProductDeleted
		pd := p.ProductDeleted
		return typeProductDeleted, checkAggregate(*e, "product_deleted", pd.GetId(), pd.GetVersion())
	case *eventsv1.Event_CategoryChanged:
		e.kind = kindCategoryChanged
		cc := p.CategoryChanged
		return typeCategoryChanged, checkAggregate(*e, "category_changed", cc.GetId(), cc.GetVersion())
	}
	return "", ""
}

// checkProductState checks a ProductChanged's name and price and sets
// them in e, or returns the reason they are poison.
func (s *Service) checkProductState(e *event, pc *eventsv1.ProductChanged) string {
	if pc.GetName() == "" {
		return "product_changed.name: must not be empty"
	}
	if problem := textProblem(pc.GetName(), maxName); problem != "" {
		return "product_changed.name: " + problem
	}
	price := pc.GetPrice()
	switch {
	case price == nil:
		return "product_changed.price: is required"
	case price.GetCurrencyCode() != string(s.currency):
		return fmt.Sprintf("product_changed.price: currency %s is not the shop currency %s", short(price.GetCurrencyCode()), s.currency)
	case price.GetAmountMinor() < 0 || price.GetAmountMinor() > money.MaxPriceMinor:
		return fmt.Sprintf("product_changed.price: amount_minor %d is outside 0..%d", price.GetAmountMinor(), int64(money.MaxPriceMinor))
	}
	e.name, e.price, e.currency = pc.GetName(), price.GetAmountMinor(), price.GetCurrencyCode()
	return ""
}

// checkAggregate checks that a payload names the event's aggregate at its
// version.
func checkAggregate(e event, payload, id string, version int64) string {
	pid, err := parseID("id", id)
	switch {
	case !e.aggregate.Valid:
		return "aggregate_id: must be a UUID"
	case err != nil || pid != uuid.UUID(e.aggregate.Bytes):
		return payload + ".id: must equal aggregate_id"
	case e.version < 1:
		return fmt.Sprintf("aggregate_version: must be positive, got %d", e.version)
	case version != e.version:
		return fmt.Sprintf("%s.version: %d must equal aggregate_version %d", payload, version, e.version)
	}
	return ""
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
