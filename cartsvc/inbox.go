package cartsvc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/protobuf/proto"

	"github.com/decoupledshop/shop/cartsvc/productclient"
	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
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

// received is what became of one delivered event: its outcome, and for a
// dead letter the reason.
type received struct {
	out    outcome
	reason string
}

// receiveAll handles delivered events from peer, at most one per event id,
// and returns what became of each, in their order. It returns an error only
// for a failure that may pass (the database is unreachable, ctx ended):
// nothing of the events was then recorded.
//
// Every event is checked first (checkEvent): poison is dead-lettered. The
// rest are applied together in one transaction (see applyBatch), each
// product's events in their order. Should the database refuse the data of
// the batch (SQLSTATE class 22 or 23), which the checks are meant to make
// impossible, each event is applied again on its own, and the ones it
// still refuses are dead-lettered: one bad event never fails the others.
// After the commit, this replica's product client learns what the events
// told (see observe).
func (s *Service) receiveAll(ctx context.Context, evs []*eventsv1.Event, peer string) ([]received, error) {
	res := make([]received, len(evs))
	var good []event
	var goodAt []int
	var poison []deadLetter
	for i, ev := range evs {
		e, reason := s.checkEvent(ev)
		if reason != "" {
			res[i] = received{outcomeDeadLettered, reason}
			poison = append(poison, deadLetter{e, reason})
			continue
		}
		good, goodAt = append(good, e), append(goodAt, i)
	}
	outs, err := s.applyBatch(ctx, good, poison, peer)
	if isDataError(err) {
		s.log.WarnContext(ctx, "events: the database refused a batch; applying its events one by one", "error", err)
		outs, err = s.applyEach(ctx, good, poison, peer)
	}
	if err != nil {
		return nil, err
	}
	for j, o := range outs {
		res[goodAt[j]] = o
		if o.out == outcomeDeadLettered {
			continue
		}
		s.observe(good[j], o.out)
	}
	for _, r := range res {
		s.metrics.results.WithLabelValues(string(r.out)).Inc()
	}
	return res, nil
}

// applyEach is receiveAll's way out when the database refuses a batch:
// every poison event and every other event in its own transaction; an
// event whose data the database refuses is dead-lettered.
func (s *Service) applyEach(ctx context.Context, good []event, poison []deadLetter, peer string) ([]received, error) {
	for _, d := range poison {
		if err := s.storeDeadLetter(ctx, s.q, d, peer); err != nil {
			return nil, err
		}
	}
	outs := make([]received, len(good))
	for i, e := range good {
		one, err := s.applyBatch(ctx, []event{e}, nil, peer)
		if isDataError(err) {
			d := deadLetter{e, "the event violates the cart database's constraints"}
			outs[i] = received{outcomeDeadLettered, d.reason}
			err = s.storeDeadLetter(ctx, s.q, d, peer)
		} else if err == nil {
			outs[i] = one[0]
		}
		if err != nil {
			return nil, err
		}
	}
	return outs, nil
}

// receive handles one replayed dead letter (dlqID) from peer and returns
// its outcome, and for a dead letter the reason: a replay that finds it
// poison still records the new reason; one already received deletes it.
// Errors are as for receiveAll.
func (s *Service) receive(ctx context.Context, ev *eventsv1.Event, peer string, dlqID uuid.UUID) (outcome, string, error) {
	e, reason := s.checkEvent(ev)
	var outs []received
	var err error
	if reason == "" {
		outs, err = s.applyBatch(ctx, []event{e}, nil, peer)
		if isDataError(err) {
			reason, err = "the event violates the cart database's constraints", nil
		}
	}
	switch {
	case err != nil:
		return "", "", err
	case reason != "":
		err = s.q.RetainDeadLetter(ctx, cartdb.RetainDeadLetterParams{ID: dlqID, Reason: reason, Now: s.timestamp()})
		if err != nil {
			return "", "", err
		}
		s.metrics.results.WithLabelValues(string(outcomeDeadLettered)).Inc()
		return outcomeDeadLettered, reason, nil
	}
	out := outs[0].out
	if out == outcomeDuplicate {
		if err := s.q.DeleteDeadLetter(ctx, dlqID); err != nil {
			return "", "", err
		}
	}
	s.observe(e, out)
	s.metrics.results.WithLabelValues(string(out)).Inc()
	return out, "", nil
}

// deadLetter is a poison event with the reason.
type deadLetter struct {
	e      event
	reason string
}

// applyBatch stores the dead letters and applies the checked events (at
// most one per event id) in one transaction, and returns each event's
// outcome: applied, stale, unused, unknown, or duplicate.
//
// The events go in rounds: round r holds the r-th event of each aggregate,
// so each product's events apply in their order. A round is two
// statements: RaiseProductVersions, the version gate of its product
// events, and ApplyEvents, which records all of them in the inbox and, for
// those it did not hold yet, updates the cart lines' and wishlist items'
// snapshots. The transaction ends with one notification for the other
// replicas of every mark raised (see notifyVersions).
func (s *Service) applyBatch(ctx context.Context, events []event, dead []deadLetter, peer string) ([]received, error) {
	if len(events) == 0 && len(dead) == 0 {
		return nil, nil
	}
	rounds := roundsOf(events)
	outs := make([]received, len(events))
	err := s.inTx(ctx, func(q *cartdb.Queries) error {
		now := s.timestamp()
		if replica := relayReplica(ctx); replica != "" {
			// The inbox rows of this transaction record it (the default
			// of inbox.relay_replica).
			if err := q.SetRelayReplica(ctx, replica); err != nil {
				return err
			}
		}
		for _, d := range dead {
			if err := s.storeDeadLetter(ctx, q, d, peer); err != nil {
				return err
			}
		}
		raised := map[uuid.UUID]int64{}
		for _, round := range rounds {
			if err := applyRound(ctx, q, events, round, outs, raised, peer, now); err != nil {
				return err
			}
		}
		return notifyVersions(ctx, q, raised, now)
	})
	return outs, err
}

// roundsOf splits events into rounds (see applyBatch): indexes into events.
func roundsOf(events []event) [][]int {
	var rounds [][]int
	seen := make(map[string]int, len(events))
	for i, e := range events {
		agg := e.msg.GetAggregateId()
		r := seen[agg]
		seen[agg] = r + 1
		if r == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[r] = append(rounds[r], i)
	}
	return rounds
}

// applyRound applies one round of applyBatch, setting the outcomes of its
// events in outs and adding the marks it raised to raised.
func applyRound(ctx context.Context, q *cartdb.Queries, events []event, round []int, outs []received, raised map[uuid.UUID]int64, peer string, now time.Time) error {
	rose := map[uuid.UUID]bool{}
	if err := raiseVersions(ctx, q, events, round, rose, now); err != nil {
		return err
	}
	recorded, err := q.ApplyEvents(ctx, inboxRows(events, round, rose, outs, peer, now))
	if err != nil {
		return err
	}
	fresh := make(map[uuid.UUID]bool, len(recorded))
	for _, id := range recorded {
		fresh[id] = true
	}
	for _, i := range round {
		e := events[i]
		switch {
		case !fresh[e.id]:
			outs[i] = received{out: outcomeDuplicate}
		case outs[i].out == outcomeApplied:
			raised[e.aggregate.Bytes] = max(raised[e.aggregate.Bytes], e.version)
		}
	}
	return nil
}

// raiseVersions runs the version gate of a round's product events
// (RaiseProductVersions) and adds the products whose mark rose to rose.
func raiseVersions(ctx context.Context, q *cartdb.Queries, events []event, round []int, rose map[uuid.UUID]bool, now time.Time) error {
	var gate cartdb.RaiseProductVersionsParams
	for _, i := range round {
		if e := events[i]; e.kind == kindProductChanged || e.kind == kindProductDeleted {
			gate.EventIds = append(gate.EventIds, e.id)
			gate.ProductIds = append(gate.ProductIds, e.aggregate.Bytes)
			gate.Versions = append(gate.Versions, e.version)
			gate.Deleted = append(gate.Deleted, e.kind == kindProductDeleted)
		}
	}
	if len(gate.EventIds) == 0 {
		return nil
	}
	gate.Now = now
	ids, err := q.RaiseProductVersions(ctx, gate)
	if err != nil {
		return err
	}
	for _, id := range ids {
		rose[id] = true
	}
	return nil
}

// inboxRows are the ApplyEvents rows of a round: each event with the
// outcome it comes to unless the inbox holds it already (set in outs too),
// given the products whose mark rose.
func inboxRows(events []event, round []int, rose map[uuid.UUID]bool, outs []received, peer string, now time.Time) cartdb.ApplyEventsParams {
	p := cartdb.ApplyEventsParams{Peer: peer, Now: now}
	for _, i := range round {
		e := events[i]
		out, kind := roundOutcome(e, rose)
		outs[i] = received{out: out}
		p.EventIds = append(p.EventIds, e.id)
		p.Types = append(p.Types, e.msg.GetType())
		p.AggregateIds = append(p.AggregateIds, e.aggregate.Bytes) // the nil UUID when not a UUID
		p.Versions = append(p.Versions, e.version)
		p.Kinds = append(p.Kinds, kind)
		p.Outcomes = append(p.Outcomes, string(out))
		p.Names = append(p.Names, e.name)
		p.Prices = append(p.Prices, e.price)
		p.Currencies = append(p.Currencies, e.currency)
	}
	return p
}

// roundOutcome is what e comes to, given the products whose mark rose in
// its round, and its kind in ApplyEvents: "changed", "deleted" or "other".
func roundOutcome(e event, rose map[uuid.UUID]bool) (outcome, string) {
	switch e.kind {
	case kindProductChanged, kindProductDeleted:
		kind := "changed"
		if e.kind == kindProductDeleted {
			kind = "deleted"
		}
		if rose[e.aggregate.Bytes] {
			return outcomeApplied, kind
		}
		return outcomeStale, kind
	case kindCategoryChanged:
		return outcomeUnused, "other"
	}
	return outcomeUnknown, "other"
}

// observe tells this replica's product client, after the commit, what an
// event with outcome out made known: an applied ProductChanged's state
// (the cache answers with it from now on), an applied ProductDeleted's
// version.
// The other replicas only learn the versions, through the notification.
func (s *Service) observe(e event, out outcome) {
	switch {
	case out != outcomeApplied:
	case e.kind == kindProductChanged:
		s.products.ObserveProduct(productclient.Product{
			ID: e.aggregate.Bytes, Name: e.name, PriceMinor: e.price, Currency: e.currency, Version: e.version,
		})
	default:
		s.products.ObserveVersion(e.aggregate.Bytes, e.version)
	}
}

// storeDeadLetter stores a poison event, or counts one more attempt of its
// dead letter. Its texts are stored in a form the database takes (see
// storedText); the event itself is kept whole, as bytes.
func (s *Service) storeDeadLetter(ctx context.Context, q *cartdb.Queries, d deadLetter, peer string) error {
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(d.e.msg)
	if err != nil {
		return fmt.Errorf("encode a poison event: %w", err)
	}
	return q.DeadLetterEvent(ctx, cartdb.DeadLetterEventParams{
		ID: s.newID(), EventID: pgtype.UUID{Bytes: d.e.id, Valid: d.e.id != uuid.Nil}, Type: storedText(d.e.msg.GetType(), maxStoredType),
		AggregateID: d.e.aggregate, AggregateVersion: d.e.version, Event: body,
		Peer: peer, Reason: d.reason, Now: s.timestamp(),
	})
}

// isDataError reports whether the database refused the event's data
// (SQLSTATE classes 22, data exception, and 23, integrity constraint
// violation), which no retry can change.
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) != 5 {
		return false
	}
	class := pgErr.Code[:2]
	return class == "22" || class == "23"
}
