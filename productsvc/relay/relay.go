// Package relay delivers productsvc's transactional outbox to the
// subscribers' EventSinkService (docs/EVENTS.md).
//
// Every replica runs a relay; they share the work through the database. For
// each subscriber, a relay repeatedly
//
//  1. makes sure it has an access token (client credentials, cached), so an
//     issuer outage costs no delivery attempts;
//  2. claims up to its batch limit of the subscriber's due rows (due time
//     next_attempt_at <= now, oldest first within each claim partition)
//     with FOR UPDATE SKIP LOCKED, leasing them for Lease: the claim sets
//     next_attempt_at = locked_until = now + Lease and locked_by = a fresh
//     claim id, and counts an attempt; rows of a product that has a row
//     leased to another claim are skipped, so each product's events are
//     held by one claim at a time. A product's rows are all in one of 16
//     claim partitions, and claims of different partitions run at once;
//  3. renews the claim's lease every Lease/3 while it delivers (heartbeat),
//     and sends the rows in batches of at most MaxBatch events and
//     MaxBatchBytes (each call limited to CallTimeout) and, after each
//     call, in one transaction fenced by the claim id: deletes the rows that
//     got a final result, reschedules transient failures at now +
//     Backoff.Delay(attempts), and moves rows that failed permanently or ran
//     out of attempts or age to outbox_dead (see the classification in
//     classify.go).
//
// Each subscriber has Lanes such loops, so several calls are in flight at
// once; since a claim skips products leased to other claims, the events of
// one product are still sent one call after the other, in order.
//
// A relay that dies after claiming leaves its rows leased; they are due
// again, for any relay, when the lease (no longer renewed) ends, within
// Lease. Cancelling Run's context gives back the rows not yet sent at once
// (a call in flight is finished and recorded). Claims go by due time, never
// by insertion or commit order, so a transaction that commits late is
// delivered as soon as it is visible.
//
// When a whole call fails (the subscriber is down), the relay probes the
// subscriber every ProbeInterval with one waiting row (the earliest of a
// claim partition) whatever its backoff, and the first call that succeeds again brings all the
// subscriber's waiting rows forward: a backlog drains as soon as the
// subscriber answers, not when each row's backoff ends.
//
// Relays wake when events commit: a relay sharing the writer's Notifier at
// once, in-process, and every relay on the Notifier's NOTIFY (at most one
// per interval per process, outside business transactions; relays LISTEN on
// the direct database URL). They also wake when the next row falls due, and
// at least every PollInterval.
package relay

import (
	"context"
	"errors"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/server"
)

// Channel is the notification channel Notifier signals and relays LISTEN on.
const Channel = "shop_outbox"

// ReplicaHeader carries Config.Replica in every DeliverEvents call.
const ReplicaHeader = "Shop-Relay-Replica"

// Relay delivers the outbox of one database to the configured subscribers.
type Relay struct {
	cfg     Config
	db      *pgxpool.Pool
	q       *productdb.Queries
	senders []*sender
	tracer  trace.Tracer
	metrics *metrics

	// afterClaim, if set, runs between a claim and its delivery (tests).
	afterClaim func(context.Context)
}

// New returns a relay over db for cfg. It fails when cfg has subscribers but
// no Tokens.
func New(db *pgxpool.Pool, cfg Config) (*Relay, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Subscribers) > 0 && cfg.Tokens == nil {
		return nil, errors.New("relay: Config.Tokens is required")
	}
	r := &Relay{cfg: cfg, db: db, q: productdb.New(db), tracer: cfg.TracerProvider.Tracer("github.com/decoupledshop/shop/productsvc/relay"),
		metrics: newMetrics(cfg.Subscribers)}
	for _, sub := range cfg.Subscribers {
		opts := append(server.ClientOptions(), connect.WithInterceptors(cfg.Tokens.Interceptor()))
		opts = append(opts, cfg.ClientOptions...)
		s := &sender{
			sub:    sub,
			client: eventsv1connect.NewEventSinkServiceClient(cfg.HTTPClient, sub.URL, opts...),
			wake:   make(chan struct{}, 1),
			limit:  cfg.MaxBatch,
		}
		if cfg.Notifier != nil {
			cfg.Notifier.subscribe(s.wake)
		}
		r.senders = append(r.senders, s)
	}
	return r, nil
}

// Run delivers until ctx is cancelled, then returns nil once its in-flight
// calls are recorded. It returns at once when there are no subscribers.
// Failures (database, subscriber, issuer) are logged and retried, never
// returned.
func (r *Relay) Run(ctx context.Context) error {
	if len(r.senders) == 0 {
		return nil
	}
	var wg sync.WaitGroup
	if r.cfg.ListenURL != "" {
		wg.Go(func() { r.listen(ctx) })
	}
	for _, s := range r.senders {
		for lane := range r.cfg.Lanes {
			wg.Go(func() { r.loop(ctx, s, lane) })
		}
	}
	wg.Wait()
	return nil
}

// minWait keeps a relay from spinning on rows that are due but being
// claimed by another relay at this very moment.
const minWait = 20 * time.Millisecond

// loop is one lane of a subscriber's deliveries. The lanes share the
// sender's wake channel, so a notification wakes one idle lane; a lane that
// claimed a full batch wakes another before it delivers, so lanes join in
// as a backlog grows.
func (r *Relay) loop(ctx context.Context, s *sender, lane int) {
	var errWait time.Duration
	for ctx.Err() == nil {
		limit := s.batchLimit()
		n, err := r.round(ctx, s, lane == 0)
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			errWait = min(max(2*errWait, 100*time.Millisecond), r.cfg.PollInterval)
			wait = errWait
			r.cfg.Logger.WarnContext(ctx, "relay: delivery round failed", "subscriber", s.sub.Name, "error", err, "retry_in", wait)
		case n >= limit:
			errWait = 0
			continue // a full claim: more rows are likely due
		default:
			errWait = 0
			wait = r.untilDue(ctx, s, n)
			if s.isFailing() && r.cfg.ProbeInterval > 0 {
				wait = min(wait, r.cfg.ProbeInterval)
			}
		}
		if wait <= 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// untilDue returns how long to wait for the subscriber's next due row, at
// most PollInterval; at least minWait when the last claim found nothing.
func (r *Relay) untilDue(ctx context.Context, s *sender, claimed int) time.Duration {
	next, err := r.q.NextDelivery(ctx, s.sub.Name)
	if errors.Is(err, pgx.ErrNoRows) {
		return r.cfg.PollInterval
	}
	if err != nil {
		return r.cfg.PollInterval
	}
	wait := min(next.Sub(r.cfg.Now()), r.cfg.PollInterval)
	if claimed == 0 {
		wait = max(wait, minWait)
	}
	return wait
}

// listen wakes every sender on each notification, and after each
// (re)connection, since notifications may have been missed meanwhile.
func (r *Relay) listen(ctx context.Context) {
	pgdb.Listen(ctx, pgdb.ListenConfig{
		URL: r.cfg.ListenURL, Channel: Channel, Handler: wakeHandler{r},
		Logger: r.cfg.Logger, What: "relay: listening for outbox notifications",
	})
}

type wakeHandler struct{ r *Relay }

func (h wakeHandler) HandleNotification(context.Context, *pgconn.Notification, *pgx.Conn) error {
	h.r.wakeAll()
	return nil
}

func (h wakeHandler) HandleBacklog(context.Context, string, *pgx.Conn) error {
	h.r.wakeAll()
	return nil
}

func (r *Relay) wakeAll() {
	for _, s := range r.senders {
		s.wakeOne()
	}
}
