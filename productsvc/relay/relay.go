// Package relay delivers productsvc's transactional outbox to the
// subscribers' EventSinkService (docs/EVENTS.md).
//
// Every replica runs a relay; they share the work through the database. For
// each subscriber, a relay repeatedly
//
//  1. makes sure it has an access token (client credentials, cached), so an
//     issuer outage costs no delivery attempts;
//  2. claims up to its batch limit of the subscriber's due rows (due time
//     next_attempt_at <= now, oldest first) with FOR UPDATE SKIP LOCKED,
//     leasing them for Lease: the claim sets next_attempt_at = locked_until
//     = now + Lease and locked_by = a fresh claim id, and counts an attempt;
//     rows of a product that has a row leased to another claim are skipped,
//     so each product's events are held by one claim at a time;
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
// subscriber every ProbeInterval with its earliest waiting row whatever
// its backoff, and the first call that succeeds again brings all the
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
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgxlisten"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/clientcreds"
	"github.com/decoupledshop/shop/internal/server"
)

// Channel is the notification channel Notifier signals and relays LISTEN on.
const Channel = "shop_outbox"

// ReplicaHeader carries Config.Replica in every DeliverEvents call.
const ReplicaHeader = "Shop-Relay-Replica"

// Defaults for Config.
const (
	DefaultMaxAttempts   = 100
	DefaultMaxAge        = 24 * time.Hour
	DefaultLease         = 3 * time.Second
	DefaultCallTimeout   = 10 * time.Second
	DefaultLanes         = 4
	DefaultProbeInterval = time.Second
	DefaultPollInterval  = 5 * time.Second
	DefaultMaxBatch      = 256
	DefaultMaxBatchBytes = 512 << 10
)

// Subscriber is a receiver of the catalog's events.
type Subscriber struct {
	// Name identifies the subscriber's outbox rows and dead letters.
	Name string
	// URL is the base URL of its EventSinkService ("http://cartsvc:8082").
	URL string
}

var subscriberName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// ParseSubscribers parses a comma-separated list of name=url pairs
// ("cartsvc=http://cartsvc:8082"); an empty string is no subscriber. Names
// are 1 to 63 lowercase letters, digits, '_' and '-', starting with a
// letter, and unique; URLs are absolute http or https URLs.
func ParseSubscribers(s string) ([]Subscriber, error) {
	var subs []Subscriber
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, raw, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("subscriber %q: want name=url", part)
		}
		if !subscriberName.MatchString(name) {
			return nil, fmt.Errorf("subscriber %q: the name must be lowercase letters, digits, '_' or '-', starting with a letter", name)
		}
		if seen[name] {
			return nil, fmt.Errorf("subscriber %q: named twice", name)
		}
		seen[name] = true
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("subscriber %q: %q is not an http or https URL", name, raw)
		}
		subs = append(subs, Subscriber{Name: name, URL: strings.TrimSuffix(raw, "/")})
	}
	return subs, nil
}

// Names returns the subscribers' names, in order.
func Names(subs []Subscriber) []string {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.Name
	}
	return names
}

// Config configures a Relay. Zero fields take their defaults.
type Config struct {
	// Subscribers to deliver to; rows of other subscribers are left alone.
	Subscribers []Subscriber
	// Tokens supplies the relay's access token (client credentials with the
	// events:write scope). Required.
	Tokens *clientcreds.Source
	// ListenURL is the direct database URL (no transaction-mode pooler) to
	// LISTEN on; empty relies on polling and Notifier alone.
	ListenURL string
	// Notifier, if set, wakes the relay in-process when this process
	// commits events (the catalog's Notifier).
	Notifier *Notifier
	// MaxAttempts is how many attempts an event gets before it is
	// dead-lettered; default DefaultMaxAttempts.
	MaxAttempts int
	// MaxAge is how long after it was queued an event that fails is still
	// retried; default DefaultMaxAge.
	MaxAge time.Duration
	// Lease is how long a claim holds its rows without being renewed;
	// default DefaultLease. A relay renews its claims' leases every Lease/3
	// while it delivers them, so a relay that dies hands its rows over to
	// the others within Lease.
	Lease time.Duration
	// CallTimeout limits one DeliverEvents call; default DefaultCallTimeout.
	CallTimeout time.Duration
	// Lanes is how many calls to each subscriber may be in flight at once
	// (each lane claims and delivers on its own); default DefaultLanes.
	Lanes int
	// ProbeInterval is how often a subscriber whose calls fail is tried
	// with its earliest waiting event regardless of backoff; default
	// DefaultProbeInterval, negative: never (only the backoff schedule).
	ProbeInterval time.Duration
	// PollInterval is the longest a relay waits before looking for due rows
	// (notifications usually wake it sooner); default DefaultPollInterval.
	PollInterval time.Duration
	// MaxBatch and MaxBatchBytes bound one call (default 256 events and
	// 512 KiB, the contract's limits); a larger single event is
	// dead-lettered.
	MaxBatch, MaxBatchBytes int
	// Backoff is the retry schedule; default DefaultBackoff.
	Backoff Backoff
	// HTTPClient carries the calls; default one with HTTP/1.1 and h2c.
	HTTPClient *http.Client
	// ClientOptions are added to the Connect clients' options (after
	// server.ClientOptions and the token interceptor).
	ClientOptions []connect.ClientOption
	// Replica names this relay's replica to the subscribers, in the
	// ReplicaHeader of every call (cartsvc's inbox records it); default
	// the host name and process id.
	Replica string
	// Logger receives delivery problems; default discards.
	Logger *slog.Logger
	// TracerProvider makes the delivery spans; default records none.
	TracerProvider trace.TracerProvider
	// Now, Rand (uniform in [0, 1)) and NewID are the clock, the jitter
	// source and the claim and dead-letter ids; default time.Now,
	// math/rand/v2.Float64 and uuid.New.
	Now   func() time.Time
	Rand  func() float64
	NewID func() uuid.UUID
}

func (c Config) withDefaults() Config {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.Lanes <= 0 {
		c.Lanes = DefaultLanes
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.Backoff == (Backoff{}) {
		c.Backoff = DefaultBackoff
	}
	if c.HTTPClient == nil {
		p := new(http.Protocols)
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		c.HTTPClient = &http.Client{Transport: &http.Transport{Protocols: p, MaxIdleConnsPerHost: 4}}
	}
	if c.Replica == "" {
		host, _ := os.Hostname()
		c.Replica = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.NewID == nil {
		c.NewID = uuid.New
	}
	return c
}

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
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.Connect(ctx, r.cfg.ListenURL)
		},
		LogError: func(ctx context.Context, err error) {
			if ctx.Err() == nil {
				r.cfg.Logger.WarnContext(ctx, "relay: listening for outbox notifications", "error", err)
			}
		},
		ReconnectDelay: time.Second,
	}
	l.Handle(Channel, wakeHandler{r})
	_ = l.Listen(ctx) // returns only when ctx is done
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
