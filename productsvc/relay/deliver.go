package relay

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/pgdb"
)

// item is a claimed outbox row, decoded for sending.
type item struct {
	row   productdb.Outbox
	event *eventsv1.Event
	size  int // bytes the event adds to a DeliverEventsRequest
}

// probeHorizon is how far ahead a probe looks for a waiting row: any.
const probeHorizon = 100 * 365 * 24 * time.Hour

// round claims the subscriber's due rows once and delivers them; when
// nothing is due, the subscriber is failing and probe is set, it claims the
// earliest waiting row whatever its backoff, once per ProbeInterval. It
// returns how many rows it claimed; an error means nothing was claimed, or
// the outcome of rows that were not sent could not be recorded.
func (r *Relay) round(ctx context.Context, s *sender, probe bool) (int, error) {
	// Without a token every call would fail: do not spend attempts on it.
	if _, err := r.cfg.Tokens.Token(ctx); err != nil {
		return 0, fmt.Errorf("get an access token: %w", err)
	}
	now := r.cfg.Now()
	claim := r.cfg.NewID()
	limit := s.batchLimit()
	params := productdb.ClaimDeliveriesParams{
		Subscriber: s.sub.Name, Now: now, DueBefore: now, LeaseUntil: now.Add(r.cfg.Lease),
		ClaimID: claim, MaxRows: int32(limit),
	}
	rows, err := r.q.ClaimDeliveries(ctx, params)
	if err == nil && len(rows) == 0 && probe && s.probeDue(now, r.cfg.ProbeInterval) {
		params.DueBefore, params.MaxRows = now.Add(probeHorizon), 1
		rows, err = r.q.ClaimDeliveries(ctx, params)
	}
	if err != nil {
		return 0, fmt.Errorf("claim due events: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	if len(rows) >= limit {
		s.wakeOne() // more may be due: another lane joins in
	}
	hbCtx, stopHeartbeat := context.WithCancel(context.WithoutCancel(ctx))
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		r.heartbeat(hbCtx, s, claim)
	}()
	defer func() {
		stopHeartbeat()
		<-hbDone
	}()
	if r.afterClaim != nil {
		r.afterClaim(ctx)
	}
	// Oldest change first, so that receivers see fewer stale events.
	slices.SortFunc(rows, func(a, b productdb.Outbox) int {
		return cmp.Or(a.OccurredAt.Compare(b.OccurredAt), cmp.Compare(a.AggregateVersion, b.AggregateVersion),
			slices.Compare(a.EventID[:], b.EventID[:]))
	})
	var unsendable outcome
	items := make([]item, 0, len(rows))
	for _, row := range rows {
		size := protowire.SizeTag(1) + protowire.SizeBytes(len(row.Event))
		switch {
		case int(row.Attempts) > r.cfg.MaxAttempts:
			// The relay that made the last allowed attempt stopped before
			// recording its result.
			unsendable.dead(r, row.EventID, fmt.Sprintf("gave up after %d attempts, the last without a result within its lease; the error before: %q",
				r.cfg.MaxAttempts, row.LastError))
			continue
		case size > r.cfg.MaxBatchBytes:
			unsendable.dead(r, row.EventID, fmt.Sprintf("the event takes %d bytes, more than a batch may carry (%d)", size, r.cfg.MaxBatchBytes))
			continue
		}
		ev := new(eventsv1.Event)
		if err := proto.Unmarshal(row.Event, ev); err != nil {
			unsendable.dead(r, row.EventID, "the stored event cannot be decoded: "+truncate(err.Error()))
			continue
		}
		items = append(items, item{row: row, event: ev, size: size})
	}
	if !unsendable.empty() {
		if err := r.finish(ctx, s, claim, unsendable); err != nil {
			return len(rows), err
		}
	}
	if unsent := r.deliverAll(ctx, s, claim, items); len(unsent) > 0 {
		r.release(ctx, s, claim, unsent)
	}
	return len(rows), nil
}

// heartbeat renews the claim's lease every Lease/3 until ctx is done or the
// claim holds no row any more.
func (r *Relay) heartbeat(ctx context.Context, s *sender, claim uuid.UUID) {
	t := time.NewTicker(max(r.cfg.Lease/3, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := r.q.RenewLeases(ctx, productdb.RenewLeasesParams{
			Subscriber: s.sub.Name, ClaimID: claim, LeaseUntil: r.cfg.Now().Add(r.cfg.Lease),
		})
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.cfg.Logger.WarnContext(ctx, "relay: renewing a lease failed", "subscriber", s.sub.Name, "error", err)
		case n == 0:
			return
		}
	}
}

// release gives back the claim's rows that were never sent (the relay is
// shutting down): due at once for any relay, their attempt uncounted.
func (r *Relay) release(ctx context.Context, s *sender, claim uuid.UUID, unsent []item) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	ids := make([]uuid.UUID, len(unsent))
	for i, it := range unsent {
		ids[i] = it.row.EventID
	}
	n, err := r.q.ReleaseDeliveries(ctx, productdb.ReleaseDeliveriesParams{
		Subscriber: s.sub.Name, ClaimID: claim, Now: r.cfg.Now(), EventIds: ids,
	})
	if err != nil {
		r.cfg.Logger.WarnContext(ctx, "relay: giving back unsent events failed; they are due again when their lease ends",
			"subscriber", s.sub.Name, "events", len(ids), "error", err)
		return
	}
	r.metrics.releases.WithLabelValues(s.sub.Name).Add(float64(n))
	r.cfg.Logger.InfoContext(ctx, "relay: stopping; gave back unsent events", "subscriber", s.sub.Name, "events", n)
}

// deliverAll sends items in batches that fit the subscriber's current
// limit and MaxBatchBytes. Once ctx is done it sends nothing more and
// returns the items it did not send.
func (r *Relay) deliverAll(ctx context.Context, s *sender, claim uuid.UUID, items []item) []item {
	var unsent []item
	for len(items) > 0 {
		if ctx.Err() != nil {
			return append(unsent, items...)
		}
		limit := s.batchLimit()
		n, bytes := 0, 0
		for n < len(items) && n < limit && (n == 0 || bytes+items[n].size <= r.cfg.MaxBatchBytes) {
			bytes += items[n].size
			n++
		}
		unsent = append(unsent, r.deliverBatch(ctx, s, claim, items[:n])...)
		items = items[n:]
	}
	return unsent
}

// deliverBatch makes one call with batch and records its outcome (see the
// classification in classify.go), and returns the events it did not send
// because ctx was done. The call runs to its own timeout (CallTimeout) even
// if ctx is cancelled meanwhile, so that what the subscriber applied is
// recorded.
func (r *Relay) deliverBatch(ctx context.Context, s *sender, claim uuid.UUID, batch []item) []item {
	if ctx.Err() != nil {
		return batch
	}
	events := make([]*eventsv1.Event, len(batch))
	for i, it := range batch {
		events[i] = it.event
	}
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CallTimeout)
	callCtx, span := r.deliverySpan(callCtx, s, batch)
	r.startDelivery(s, batch)
	req := connect.NewRequest(&eventsv1.DeliverEventsRequest{Events: events})
	req.Header().Set(ReplicaHeader, r.cfg.Replica)
	resp, err := s.client.DeliverEvents(callCtx, req)
	r.endDelivery(span, s, len(batch), err)
	cancel()
	now := r.cfg.Now()
	var out outcome
	if err == nil {
		s.succeeded(r.cfg.MaxBatch)
		status := make(map[string]eventsv1.DeliveryStatus, len(resp.Msg.GetResults()))
		for _, res := range resp.Msg.GetResults() {
			status[res.GetEventId()] = res.GetStatus()
		}
		retried := false
		for _, it := range batch {
			st, ok := status[it.event.GetId()]
			switch {
			case final(st):
				out.done = append(out.done, it.row.EventID)
				retried = retried || it.row.Attempts > 1
			case !ok:
				out.retry(r, it, now, "the subscriber returned no result for the event")
			default:
				out.retry(r, it, now, "the subscriber returned the non-final result "+st.String())
			}
		}
		r.metrics.delivered.WithLabelValues(s.sub.Name).Add(float64(len(out.done)))
		if s.answered(now, retried, r.cfg.ProbeInterval) {
			defer r.bringForward(ctx, s, now)
		}
	} else {
		code := connect.CodeOf(err)
		switch {
		case len(batch) > 1 && code == connect.CodeResourceExhausted:
			s.shrink(len(batch))
			r.cfg.Logger.InfoContext(ctx, "relay: subscriber refused a batch as too large; halving the batch limit",
				"subscriber", s.sub.Name, "batch", len(batch), "limit", s.batchLimit())
			return r.deliverAll(ctx, s, claim, batch)
		case len(batch) > 1 && permanent(code):
			// Some event of the batch is refused: find it by halves.
			mid := len(batch) / 2
			unsent := r.deliverBatch(ctx, s, claim, batch[:mid])
			return append(unsent, r.deliverBatch(ctx, s, claim, batch[mid:])...)
		case permanent(code):
			out.dead(r, batch[0].row.EventID, "the subscriber refused the event: "+reason(err))
		default:
			s.failed(now)
			why := reason(err)
			r.cfg.Logger.WarnContext(ctx, "relay: delivery failed; its events are retried with backoff",
				"subscriber", s.sub.Name, "events", len(batch), "error", why)
			for _, it := range batch {
				out.retry(r, it, now, why)
			}
		}
	}
	if err := r.finish(ctx, s, claim, out); err != nil {
		r.cfg.Logger.WarnContext(ctx, "relay: recording a delivery failed; its events are sent again after the lease",
			"subscriber", s.sub.Name, "events", len(batch), "error", err)
	}
	return nil
}

// bringForward makes the subscriber's rows waiting for a retry due now,
// since it answers again, and wakes the relays to send them.
func (r *Relay) bringForward(ctx context.Context, s *sender, now time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	n, err := r.q.BringForwardDeliveries(ctx, productdb.BringForwardDeliveriesParams{Subscriber: s.sub.Name, Now: now})
	if err != nil {
		r.cfg.Logger.WarnContext(ctx, "relay: bringing waiting events forward failed; they wait for their backoff",
			"subscriber", s.sub.Name, "error", err)
		return
	}
	if n == 0 {
		return
	}
	r.metrics.broughtForward.WithLabelValues(s.sub.Name).Add(float64(n))
	r.cfg.Logger.InfoContext(ctx, "relay: the subscriber answers again; its waiting events are due now",
		"subscriber", s.sub.Name, "events", n)
	s.wakeOne()
	if err := r.q.NotifyOutbox(ctx); err != nil {
		r.cfg.Logger.WarnContext(ctx, "relay: notifying the other relays failed", "error", err)
	}
}

// outcome is what a claim's rows come to after a call.
type outcome struct {
	done []uuid.UUID

	retryIDs    []uuid.UUID
	retryAt     []time.Time
	retryErrors []string

	deadEventIDs []uuid.UUID
	deadIDs      []uuid.UUID
	deadReasons  []string
}

func (o *outcome) empty() bool {
	return len(o.done)+len(o.retryIDs)+len(o.deadEventIDs) == 0
}

// kinds counts the kinds of outcome (delivered, retried, dead) o holds.
func (o *outcome) kinds() int {
	n := 0
	for _, k := range []int{len(o.done), len(o.retryIDs), len(o.deadEventIDs)} {
		if k > 0 {
			n++
		}
	}
	return n
}

// retry schedules the item's next attempt after a transient failure, or
// dead-letters it when it has used its attempts or age.
func (o *outcome) retry(r *Relay, it item, now time.Time, why string) {
	attempts := int(it.row.Attempts)
	switch age := now.Sub(it.row.CreateTime); {
	case attempts >= r.cfg.MaxAttempts:
		o.dead(r, it.row.EventID, fmt.Sprintf("gave up after %d attempts: %s", attempts, why))
	case age >= r.cfg.MaxAge:
		o.dead(r, it.row.EventID, fmt.Sprintf("gave up after %d attempts in %s: %s", attempts, age.Round(time.Second), why))
	default:
		o.retryIDs = append(o.retryIDs, it.row.EventID)
		o.retryAt = append(o.retryAt, now.Add(r.cfg.Backoff.Delay(attempts, r.cfg.Rand())))
		o.retryErrors = append(o.retryErrors, why)
	}
}

func (o *outcome) dead(r *Relay, eventID uuid.UUID, why string) {
	o.deadEventIDs = append(o.deadEventIDs, eventID)
	o.deadIDs = append(o.deadIDs, r.cfg.NewID())
	o.deadReasons = append(o.deadReasons, truncate(why))
}

// finishTimeout bounds recording an outcome, which runs even after the
// relay's context is cancelled.
const finishTimeout = 10 * time.Second

// finish records o atomically (one statement per kind of outcome, in one
// transaction when there are several), touching only rows the claim still
// holds (a row whose lease ran out may belong to another claim by now).
func (r *Relay) finish(ctx context.Context, s *sender, claim uuid.UUID, o outcome) error {
	if o.empty() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	var held int64
	record := func(q *productdb.Queries) error {
		held = 0
		if len(o.done) > 0 {
			n, err := q.DeleteDeliveries(ctx, productdb.DeleteDeliveriesParams{
				Subscriber: s.sub.Name, ClaimID: claim, EventIds: o.done,
			})
			if err != nil {
				return fmt.Errorf("delete delivered events: %w", err)
			}
			held += n
		}
		if len(o.retryIDs) > 0 {
			n, err := q.RescheduleDeliveries(ctx, productdb.RescheduleDeliveriesParams{
				Subscriber: s.sub.Name, ClaimID: claim,
				EventIds: o.retryIDs, NextAttemptAts: o.retryAt, LastErrors: o.retryErrors,
			})
			if err != nil {
				return fmt.Errorf("reschedule events: %w", err)
			}
			held += n
		}
		if len(o.deadEventIDs) > 0 {
			n, err := q.DeadLetterDeliveries(ctx, productdb.DeadLetterDeliveriesParams{
				Subscriber: s.sub.Name, ClaimID: claim, CreateTime: r.cfg.Now(),
				EventIds: o.deadEventIDs, Ids: o.deadIDs, Reasons: o.deadReasons,
			})
			if err != nil {
				return fmt.Errorf("dead-letter events: %w", err)
			}
			held += n
		}
		return nil
	}
	var err error
	if o.kinds() == 1 {
		// One statement is atomic on its own: no BEGIN and COMMIT round
		// trips (the usual outcome, a batch all delivered).
		err = record(r.q)
	} else {
		err = pgdb.InTx(ctx, r.db, func(tx pgx.Tx) error { return record(r.q.WithTx(tx)) })
	}
	if err != nil {
		return err
	}
	if want := int64(len(o.done) + len(o.retryIDs) + len(o.deadEventIDs)); held < want {
		r.cfg.Logger.InfoContext(ctx, "relay: lease lost before the outcome was recorded; another relay has the events",
			"subscriber", s.sub.Name, "events", want-held)
	}
	if n := len(o.deadEventIDs); n > 0 {
		r.cfg.Logger.WarnContext(ctx, "relay: events dead-lettered", "subscriber", s.sub.Name, "events", n, "reason", o.deadReasons[0])
	}
	return nil
}
