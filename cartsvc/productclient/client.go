// Package productclient is cartsvc's client of productsvc. It reads products with
// BatchGetProducts through a bounded ristretto cache, makes one call for
// all of a lookup's misses, shares a fetch in flight with every concurrent
// lookup of the same product (singleflight), retries idempotent reads with
// exponential backoff inside the caller's deadline, and stops calling a
// failing productsvc with a circuit breaker that probes again after 500 ms,
// doubling the wait after each failed probe up to 1 s (see breaker).
//
// Cached entries carry the product version. A per-product high-water mark
// (fed by ObserveVersion, and by the minimum versions callers pass in each
// Want) decides which entries may be served: one older than the mark never
// is, and a fetch that was in flight when a newer version was observed
// does not put its older result into the cache.
package productclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/cenkalti/backoff/v4"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/google/uuid"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/internal/server"
)

// Defaults for the zero fields of Config.
const (
	DefaultCallTimeout     = 500 * time.Millisecond
	DefaultRetries         = 2
	DefaultTTL             = 30 * time.Second
	DefaultMaxStale        = time.Hour
	DefaultMaxEntries      = 100_000
	DefaultBreakerFailures = 5
	DefaultBreakerOpen     = 500 * time.Millisecond
	// DefaultBreakerOpenMax keeps probes at least once a second: one call a
	// second per replica costs productsvc nothing, and a longer wait would
	// keep cart writes failing for that long after productsvc is back.
	DefaultBreakerOpenMax = time.Second
)

// maxBatch is BatchGetProducts' limit on ids per call.
const maxBatch = 100

// ErrUnavailable wraps every error of a lookup that productsvc did not
// answer (down, slow, breaker open, or a failure of its own).
var ErrUnavailable = errors.New("productclient: productsvc did not answer")

// Config configures a Client; zero fields take the defaults.
type Config struct {
	// BaseURL is productsvc's base URL, e.g. "http://productsvc:8081", or
	// several, comma-separated (one per replica): each attempt of a call
	// goes to the next one that has not failed within the last second.
	// Required.
	BaseURL string
	// HTTPClient carries the calls; default a pooled HTTP/1.1 client.
	HTTPClient connect.HTTPClient
	// CallTimeout is the deadline of each call (attempt). Default 500 ms.
	CallTimeout time.Duration
	// Retries is how many times a call that failed with Unavailable,
	// DeadlineExceeded or a transport error is retried, as long as the
	// caller's deadline allows. Default 2; negative means never.
	Retries int
	// Backoff returns the wait policy between attempts; default
	// exponential from 50 ms to 250 ms with jitter.
	Backoff func() backoff.BackOff
	// TTL is how long an entry is served without asking productsvc.
	// Default 30 s.
	TTL time.Duration
	// MaxStale is how long an entry is kept for answers while productsvc
	// cannot be reached. Default 1 h.
	MaxStale time.Duration
	// MaxEntries bounds the cache (each product costs 1) and the
	// version high-water marks. Default 100 000.
	MaxEntries int64
	// BreakerFailures is how many consecutive failed calls open the
	// breaker. Default 5.
	BreakerFailures uint32
	// BreakerOpen is how long the breaker stays open before letting one
	// probe call through (half-open); each failed probe doubles it, up to
	// BreakerOpenMax, and a successful one resets it. Default 500 ms.
	BreakerOpen time.Duration
	// BreakerOpenMax bounds the open period. Default 1 s.
	BreakerOpenMax time.Duration
	// BreakerNow is the breaker's clock; default time.Now.
	BreakerNow func() time.Time
	// Now is the clock deciding whether an entry is fresh; default
	// time.Now.
	Now func() time.Time
	// Logger receives breaker state changes and, at most once per 10 s,
	// that productsvc cannot be reached, with the cause; default discard.
	Logger *slog.Logger
	// ClientOptions are added to the Connect client's options (telemetry:
	// traces, which pass the request's traceparent on, and call metrics).
	ClientOptions []connect.ClientOption
}

// Product is what a cart needs of a catalog product.
type Product struct {
	ID uuid.UUID
	// Missing is true when productsvc reported the id in missing_ids:
	// deleted (which is final) or never created. The other fields are then
	// zero.
	Missing    bool
	Name       string
	PriceMinor int64
	Currency   string
	Version    int64
}

// Want asks for one product.
type Want struct {
	ID uuid.UUID
	// MinVersion is the highest version the caller has recorded for the
	// product; older data is never returned.
	MinVersion int64
	// Live skips the cache: the product is returned only if productsvc
	// answered for it during this lookup (or a fetch in flight that the
	// lookup joined).
	Live bool
}

// Entry is a looked-up product.
type Entry struct {
	Product
	// Stale is true when the entry came from the cache after its TTL
	// because productsvc could not answer.
	Stale bool
}

// Stats counts what the client did, for tests and metrics.
type Stats struct {
	// Calls is the number of BatchGetProducts calls attempted (retries
	// included) that the breaker let through.
	Calls int64
	// Shared is the number of product fetches a lookup joined instead of
	// making its own call.
	Shared int64
	// Rejected is the number of fetched products dropped because a newer
	// version was observed while the fetch was in flight.
	Rejected int64
}

// Client reads products from productsvc. It is safe for concurrent use.
type Client struct {
	addrs       *addresses
	unavailable *unavailableLog
	cache       *ristretto.Cache[string, cached]
	breaker     *breaker
	callTimeout time.Duration
	retries     int
	backoff     func() backoff.BackOff
	ttl         time.Duration
	maxStale    time.Duration
	now         func() time.Time

	mu          sync.Mutex
	inflight    map[uuid.UUID]*flight
	versions    map[uuid.UUID]int64 // high-water marks
	maxVersions int

	calls, shared, rejected atomic.Int64
	metrics                 *metrics
}

// cached is a cache value: the product and when it was fetched.
type cached struct {
	Product
	fetched time.Time
}

// flight is one fetch in progress; products and err are set before done is
// closed.
type flight struct {
	done     chan struct{}
	products map[uuid.UUID]Product
	err      error
}

// New returns a Client for cfg. Close it to release the cache.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("productclient: BaseURL is required")
	}
	urls, err := splitURLs(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("productclient: BaseURL: %w", err)
	}
	if cfg.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		cfg.HTTPClient = &http.Client{Transport: t}
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.Backoff == nil {
		cfg.Backoff = func() backoff.BackOff {
			return backoff.NewExponentialBackOff(
				backoff.WithInitialInterval(50*time.Millisecond),
				backoff.WithMaxInterval(250*time.Millisecond),
				backoff.WithMaxElapsedTime(0),
			)
		}
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxStale < cfg.TTL {
		cfg.MaxStale = max(DefaultMaxStale, cfg.TTL)
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.BreakerFailures == 0 {
		cfg.BreakerFailures = DefaultBreakerFailures
	}
	if cfg.BreakerOpen <= 0 {
		cfg.BreakerOpen = DefaultBreakerOpen
	}
	if cfg.BreakerOpenMax <= 0 {
		cfg.BreakerOpenMax = max(DefaultBreakerOpenMax, cfg.BreakerOpen)
	}
	if cfg.BreakerNow == nil {
		cfg.BreakerNow = time.Now
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := newMetrics()
	cache, err := ristretto.NewCache(&ristretto.Config[string, cached]{
		OnEvict:            func(*ristretto.Item[cached]) { m.evictions.Inc() },
		NumCounters:        cfg.MaxEntries * 10,
		MaxCost:            cfg.MaxEntries,
		BufferItems:        64,
		IgnoreInternalCost: true, // cost 1 per product, not bytes
		// Never replace an entry by an older version of the product.
		ShouldUpdate: func(next, prev cached) bool {
			return next.Missing || next.Version >= prev.Version
		},
	})
	if err != nil {
		return nil, fmt.Errorf("productclient: cache: %w", err)
	}
	log := cfg.Logger
	c := &Client{
		addrs:       newAddresses(urls, cfg.HTTPClient, append(server.ClientOptions(), cfg.ClientOptions...)),
		unavailable: &unavailableLog{log: cfg.Logger},
		cache:       cache,
		callTimeout: cfg.CallTimeout,
		retries:     cfg.Retries,
		backoff:     cfg.Backoff,
		ttl:         cfg.TTL,
		maxStale:    cfg.MaxStale,
		now:         cfg.Now,
		inflight:    map[uuid.UUID]*flight{},
		versions:    map[uuid.UUID]int64{},
		maxVersions: int(cfg.MaxEntries),
		metrics:     m,
	}
	c.breaker = newBreaker(cfg.BreakerFailures, cfg.BreakerOpen, cfg.BreakerOpenMax, cfg.BreakerNow, func(from, to State) {
		log.Warn("circuit breaker changed state", "breaker", "productsvc", "from", from.String(), "to", to.String())
		m.transitions.WithLabelValues(stateLabel(to)).Inc()
	})
	return c, nil
}

// Close releases the cache; lookups after Close always call productsvc.
func (c *Client) Close() { c.cache.Close() }

// Wait blocks until the cache has applied every write made before the
// call (ristretto applies them asynchronously). Tests use it.
func (c *Client) Wait() { c.cache.Wait() }

// BreakerState is the circuit breaker's current state.
func (c *Client) BreakerState() State { return c.breaker.State() }

// Stats returns the counters so far.
func (c *Client) Stats() Stats {
	return Stats{Calls: c.calls.Load(), Shared: c.shared.Load(), Rejected: c.rejected.Load()}
}

// ObserveVersion records that version of the product exists (or, for a
// deletion, that the product is gone at version). From then on no entry
// older than version is served or cached, including the result of a fetch
// already in flight. The event consumer calls it for every product event.
//
// The marks are bounded by Config.MaxEntries; when a mark must be forgotten
// to make room, the product's cache entry is dropped with it.
func (c *Client) ObserveVersion(productID uuid.UUID, version int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.raiseMark(productID, version)
}

// ObserveProduct is ObserveVersion for a product's full state at its
// version, as a ProductChanged event carries it: the product's mark rises
// to p.Version, and p goes into the cache as if just fetched, unless the
// mark is already newer (then it is ignored). So the replica that applied
// the event answers the next lookups without asking productsvc.
func (c *Client) ObserveProduct(p Product) {
	if p.Missing {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.raiseMark(p.ID, p.Version) && c.versions[p.ID] > p.Version {
		return
	}
	c.cache.SetWithTTL(key(p.ID), cached{Product: p, fetched: c.now()}, 1, c.maxStale)
}

// raiseMark raises the product's mark to version and drops an older cache
// entry; it reports whether the mark rose. c.mu is held.
func (c *Client) raiseMark(productID uuid.UUID, version int64) bool {
	prev, known := c.versions[productID]
	if known && version <= prev {
		return false
	}
	if !known && len(c.versions) >= c.maxVersions {
		for id := range c.versions {
			delete(c.versions, id)
			c.cache.Del(key(id))
			break
		}
	}
	c.versions[productID] = version
	if e, ok := c.cache.Get(key(productID)); ok && !e.Missing && e.Version < version {
		c.cache.Del(key(productID))
	}
	return true
}

// ObservedVersion returns the product's high-water mark: the highest
// version passed to ObserveVersion (0 if none, or forgotten).
func (c *Client) ObservedVersion(productID uuid.UUID) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.versions[productID]
}

// Lookup returns the wanted products it can vouch for, by id.
//
// A product comes from the cache when its entry is younger than the TTL and
// not older than the product's high-water mark or MinVersion (Live wants
// skip this). All other products are fetched with one BatchGetProducts
// call (one per 100 ids), except those already being fetched by a
// concurrent lookup, whose fetch is joined. When productsvc does not
// answer, non-Live products fall back to older cache entries that are still
// new enough, marked Stale, and the error wraps ErrUnavailable; products
// with no usable data are absent from the map. A fetched product older
// than the mark is neither cached nor returned. If ctx ends before the
// fetch, Lookup stops waiting, falls back the same way and returns ctx's
// error; the fetch itself goes on until ctx's deadline for the lookups
// that joined it.
func (c *Client) Lookup(ctx context.Context, wants []Want) (map[uuid.UUID]Entry, error) {
	need := make(map[uuid.UUID]Want, len(wants))
	for _, w := range wants {
		if prev, ok := need[w.ID]; ok {
			w.MinVersion = max(w.MinVersion, prev.MinVersion)
			w.Live = w.Live || prev.Live
		}
		need[w.ID] = w
	}
	out := make(map[uuid.UUID]Entry, len(need))
	now := c.now()
	var misses []uuid.UUID
	for id, w := range need {
		if !w.Live {
			if e, ok := c.cached(id, w.MinVersion); ok && now.Sub(e.fetched) < c.ttl {
				out[id] = Entry{Product: e.Product}
				continue
			}
		}
		misses = append(misses, id)
	}
	c.metrics.hits.Add(float64(len(out)))
	c.metrics.misses.Add(float64(len(misses)))
	if len(misses) == 0 {
		return out, nil
	}
	slices.SortFunc(misses, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	fetched, err := c.fetch(ctx, misses)
	for _, id := range misses {
		w := need[id]
		if p, ok := fetched[id]; ok && c.usable(p, w.MinVersion) {
			out[id] = Entry{Product: p}
			continue
		}
		if w.Live {
			continue
		}
		if e, ok := c.cached(id, w.MinVersion); ok {
			out[id] = Entry{Product: e.Product, Stale: true}
			c.metrics.stale.Inc()
		}
	}
	return out, err
}

func key(id uuid.UUID) string { return string(id[:]) }

// cached returns the cache entry of id if it is not older than min or the
// product's high-water mark.
func (c *Client) cached(id uuid.UUID, min int64) (cached, bool) {
	e, ok := c.cache.Get(key(id))
	if !ok || !c.usable(e.Product, min) {
		return cached{}, false
	}
	return e, true
}

// usable reports whether p is at least version min and the high-water
// mark. A missing product is final, so always usable.
func (c *Client) usable(p Product, min int64) bool {
	if p.Missing {
		return true
	}
	c.mu.Lock()
	mark := c.versions[p.ID]
	c.mu.Unlock()
	return p.Version >= max(min, mark)
}

// fetch returns the products ids resolved to, joining fetches in flight and
// starting one for the rest.
func (c *Client) fetch(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]Product, error) {
	f := &flight{done: make(chan struct{})}
	var own []uuid.UUID
	var flights []*flight
	c.mu.Lock()
	for _, id := range ids {
		if g, ok := c.inflight[id]; ok {
			if !slices.Contains(flights, g) {
				flights = append(flights, g)
			}
			c.shared.Add(1)
			continue
		}
		c.inflight[id] = f
		own = append(own, id)
	}
	c.mu.Unlock()
	if len(own) > 0 {
		flights = append(flights, f)
		go c.run(ctx, f, own)
	}
	out := make(map[uuid.UUID]Product, len(ids))
	var errs []error
	for _, g := range flights {
		select {
		case <-g.done:
		case <-ctx.Done():
			return out, ctx.Err()
		}
		for _, id := range ids {
			if p, ok := g.products[id]; ok {
				out[id] = p
			}
		}
		if g.err != nil {
			errs = append(errs, g.err)
		}
	}
	return out, errors.Join(errs...)
}

// run fetches ids for flight f. It outlives a cancelled caller (others may
// have joined) but not the caller's deadline.
func (c *Client) run(ctx context.Context, f *flight, ids []uuid.UUID) {
	fctx := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		fctx, cancel = context.WithDeadline(fctx, d)
		defer cancel()
	}
	products, err := c.batchGet(fctx, ids)
	fetched := c.now()
	f.products = make(map[uuid.UUID]Product, len(products))
	c.mu.Lock()
	for _, p := range products {
		if !p.Missing && p.Version < c.versions[p.ID] {
			c.rejected.Add(1)
			continue
		}
		f.products[p.ID] = p
		c.cache.SetWithTTL(key(p.ID), cached{Product: p, fetched: fetched}, 1, c.maxStale)
	}
	for _, id := range ids {
		if c.inflight[id] == f {
			delete(c.inflight, id)
		}
	}
	c.mu.Unlock()
	f.err = err
	close(f.done)
}

// batchGet calls BatchGetProducts for ids, 100 at a time.
func (c *Client) batchGet(ctx context.Context, ids []uuid.UUID) ([]Product, error) {
	var out []Product
	for chunk := range slices.Chunk(ids, maxBatch) {
		resp, err := c.call(ctx, chunk)
		if err != nil {
			if !isCanceled(err) {
				c.unavailable.failed(time.Now(), err)
			}
			return out, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		out = append(out, products(resp, chunk)...)
	}
	return out, nil
}

// call makes one BatchGetProducts call through the breaker, retrying
// failures that count against productsvc while ctx allows. The client's
// telemetry passes on the trace of the request that started the fetch.
func (c *Client) call(ctx context.Context, ids []uuid.UUID) (*productv1.BatchGetProductsResponse, error) {
	req := &productv1.BatchGetProductsRequest{Ids: make([]string, len(ids))}
	for i, id := range ids {
		req.Ids[i] = id.String()
	}
	attempt := func() (*productv1.BatchGetProductsResponse, error) {
		resp, err := c.through(ctx, req)
		if err != nil && !retryable(err) {
			return nil, backoff.Permanent(err)
		}
		return resp, err
	}
	policy := backoff.WithContext(backoff.WithMaxRetries(c.backoff(), uint64(c.retries)), ctx)
	return backoff.RetryWithData(attempt, policy)
}

// through makes one call through the breaker.
func (c *Client) through(ctx context.Context, req *productv1.BatchGetProductsRequest) (*productv1.BatchGetProductsResponse, error) {
	if err := c.breaker.allow(); err != nil {
		return nil, err
	}
	c.calls.Add(1)
	actx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	addr := c.addrs.pick(time.Now())
	resp, err := c.addrs.rpcs[addr].BatchGetProducts(actx, connect.NewRequest(req))
	if err != nil {
		err = callError(actx, err)
		if isFailure(err) && !isCanceled(err) {
			c.addrs.failed(addr, time.Now())
		}
	}
	switch {
	case isCanceled(err):
		c.breaker.done(excluded)
	case err != nil && isFailure(err):
		c.breaker.done(failed)
	default:
		c.breaker.done(succeeded)
	}
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// products converts a response, keeping only the ids asked for.
func products(resp *productv1.BatchGetProductsResponse, asked []uuid.UUID) []Product {
	var out []Product
	for _, p := range resp.GetProducts() {
		id, err := uuid.Parse(p.GetId())
		if err != nil || !slices.Contains(asked, id) {
			continue
		}
		out = append(out, Product{
			ID:         id,
			Name:       p.GetName(),
			PriceMinor: p.GetPrice().GetAmountMinor(),
			Currency:   p.GetPrice().GetCurrencyCode(),
			Version:    p.GetVersion(),
		})
	}
	for _, s := range resp.GetMissingIds() {
		id, err := uuid.Parse(s)
		if err != nil || !slices.Contains(asked, id) {
			continue
		}
		out = append(out, Product{ID: id, Missing: true})
	}
	return out
}

// transportError is a connection failure that connect-go reports as
// Canceled: it reads a reset or broken connection as a peer that went
// away. It does not unwrap, so it is never mistaken for a cancellation.
type transportError struct{ err error }

func (e *transportError) Error() string { return "transport: " + e.err.Error() }

// callError is err of a call made with ctx, with a Canceled error that was
// not caused by ctx turned into the transport error it is.
func callError(ctx context.Context, err error) error {
	if ctx.Err() == nil && !connect.IsWireError(err) && connect.CodeOf(err) == connect.CodeCanceled {
		return &transportError{err}
	}
	return err
}

// isFailure reports whether err counts against productsvc: Unavailable,
// DeadlineExceeded, or a transport error (anything productsvc did not
// answer itself). NotFound, InvalidArgument and the other codes productsvc
// answers with do not count, nor does cancellation.
func isFailure(err error) bool {
	if isCanceled(err) {
		return false
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return true
	}
	switch ce.Code() {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded:
		return true
	}
	return !connect.IsWireError(ce)
}

func isCanceled(err error) bool {
	return err != nil && (errors.Is(err, context.Canceled) || connect.CodeOf(err) == connect.CodeCanceled)
}

// retryable reports whether another attempt may succeed: the failure was
// productsvc's, and the breaker did not refuse the call.
func retryable(err error) bool {
	if errors.Is(err, ErrOpenState) || errors.Is(err, ErrTooManyRequests) {
		return false
	}
	return isFailure(err)
}
