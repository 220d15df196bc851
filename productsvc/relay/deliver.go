package relay

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
)

// item is a claimed outbox row, decoded for sending.
type item struct {
	row   productdb.Outbox
	event *eventsv1.Event
	size  int // bytes the event adds to a DeliverEventsRequest
}

// probeHorizon is how far ahead a probe looks for a waiting row: any.
const probeHorizon = 100 * 365 * 24 * time.Hour

// sender is the delivery state of one subscriber in this relay.
type sender struct {
	sub    Subscriber
	client eventsv1connect.EventSinkServiceClient
	wake   chan struct{}

	mu    sync.Mutex
	limit int // events per call, halved on ResourceExhausted
	fine  int // successful calls since the limit last changed
	// failing is set by a call that failed as a whole (the subscriber is
	// down) and cleared by the next one that succeeds; lastTry is when
	// the last failed call or probe was made (Config.Now).
	failing bool
	lastTry time.Time
	// forwardAt is when waiting rows were last brought forward.
	forwardAt time.Time
}

// round claims the subscriber's due rows once and delivers them (see
// claim). It returns how many rows it claimed; an error means nothing was
// claimed, or the outcome of rows that were not sent could not be recorded.
func (r *Relay) round(ctx context.Context, s *sender, probe bool) (int, error) {
	// Without a token every call would fail: do not spend attempts on it.
	if _, err := r.cfg.Tokens.Token(ctx); err != nil {
		return 0, fmt.Errorf("get an access token: %w", err)
	}
	claim, rows, err := r.claim(ctx, s, probe)
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, nil
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
	items, unsendable := r.decode(rows)
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

// claim claims up to the subscriber's batch limit of due rows under a fresh
// claim id; when nothing is due, the subscriber is failing and probe is
// set, it claims one waiting row whatever its backoff (the earliest of a
// claim partition), once per ProbeInterval. A full claim wakes another lane: more rows may be due.
func (r *Relay) claim(ctx context.Context, s *sender, probe bool) (uuid.UUID, []productdb.Outbox, error) {
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
		return claim, nil, fmt.Errorf("claim due events: %w", err)
	}
	if len(rows) >= limit {
		s.wakeOne()
	}
	return claim, rows, nil
}

// decode orders the claimed rows oldest change first, so that receivers
// see fewer stale events, and decodes them for sending; the rows that
// cannot be sent (out of attempts, too large, undecodable) are
// dead-lettered in the returned outcome.
func (r *Relay) decode(rows []productdb.Outbox) ([]item, outcome) {
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
	return items, unsendable
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
// because ctx was done.
func (r *Relay) deliverBatch(ctx context.Context, s *sender, claim uuid.UUID, batch []item) []item {
	if ctx.Err() != nil {
		return batch
	}
	resp, err := r.call(ctx, s, batch)
	now := r.cfg.Now()
	var out outcome
	forward := false
	if err == nil {
		forward = r.accepted(s, batch, resp.Msg, now, &out)
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
	if forward {
		r.bringForward(ctx, s, now)
	}
	return nil
}

// call sends batch to the subscriber in one DeliverEvents call. The call
// runs to its own timeout (CallTimeout) even if ctx is cancelled meanwhile,
// so that what the subscriber applied is recorded.
func (r *Relay) call(ctx context.Context, s *sender, batch []item) (*connect.Response[eventsv1.DeliverEventsResponse], error) {
	events := make([]*eventsv1.Event, len(batch))
	for i, it := range batch {
		events[i] = it.event
	}
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CallTimeout)
	defer cancel()
	callCtx, span := r.deliverySpan(callCtx, s, batch)
	r.startDelivery(s, batch)
	req := connect.NewRequest(&eventsv1.DeliverEventsRequest{Events: events})
	req.Header().Set(ReplicaHeader, r.cfg.Replica)
	resp, err := s.client.DeliverEvents(callCtx, req)
	r.endDelivery(span, s, len(batch), err)
	return resp, err
}

// accepted records in out the results of a call that succeeded: done for
// the events with a final result, a retry for the others. It reports
// whether the subscriber's waiting rows should be brought forward (see
// sender.answered).
func (r *Relay) accepted(s *sender, batch []item, resp *eventsv1.DeliverEventsResponse, now time.Time, out *outcome) bool {
	s.succeeded(r.cfg.MaxBatch)
	status := make(map[string]eventsv1.DeliveryStatus, len(resp.GetResults()))
	for _, res := range resp.GetResults() {
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
	return s.answered(now, retried, r.cfg.ProbeInterval)
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

// wakeOne wakes one idle lane of s, if none is about to wake already.
func (s *sender) wakeOne() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// growAfter is how many successful calls in a row double a halved limit.
const growAfter = 16

func (s *sender) batchLimit() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit
}

// shrink halves the limit below a batch of n events that was refused with
// ResourceExhausted.
func (s *sender) shrink(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = max(1, min(s.limit, n/2))
	s.fine = 0
}

// succeeded counts a successful call and doubles a halved limit after
// growAfter of them, up to maxBatch.
func (s *sender) succeeded(maxBatch int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limit >= maxBatch {
		return
	}
	s.fine++
	if s.fine >= growAfter {
		s.limit = min(maxBatch, 2*s.limit)
		s.fine = 0
	}
}

// failed records a call to s that failed as a whole at now.
func (s *sender) failed(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing, s.lastTry = true, now
}

func (s *sender) isFailing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failing
}

// probeDue reports whether s is failing and its last try was at least
// interval before now; if so it counts now as the time of the next try.
func (s *sender) probeDue(now time.Time, interval time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.failing || interval < 0 || now.Sub(s.lastTry) < interval {
		return false
	}
	s.lastTry = now
	return true
}

// answered records a successful call at now and reports whether waiting
// rows should be brought forward: always after failed calls, and at most
// once per interval when the call delivered events that had been tried
// before (their earlier failures may have been another relay's).
func (s *sender) answered(now time.Time, retried bool, interval time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	recovered := s.failing
	s.failing = false
	if !recovered && (!retried || interval < 0 || now.Sub(s.forwardAt) < interval) {
		return false
	}
	s.forwardAt = now
	return true
}
