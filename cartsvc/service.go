package cartsvc

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/decoupledshop/shop/cartsvc/productclient"
	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/money"
	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// Limits of the cart rules, also enforced by CHECK constraints where the
// database can.
const (
	// MaxCartLines is how many different products a cart holds.
	MaxCartLines = 100
	// MaxQuantity is the largest quantity of one product in a cart.
	MaxQuantity = 999
	// MaxWishlistItems is how many products a wishlist holds.
	MaxWishlistItems = 100
	// RequestRetention is how long the result of a write with a request_id
	// is returned for repeats of it.
	RequestRetention = 24 * time.Hour
	// DefaultHoldIdle is how long a cart may go without a write before its
	// promo code hold lapses.
	DefaultHoldIdle = 24 * time.Hour
	// DefaultInboxRetention is how long received event ids are kept.
	DefaultInboxRetention = 7 * 24 * time.Hour
	// maxUserID is the longest subject the database stores.
	maxUserID = 255
)

// Options configures a Service; zero fields take their defaults.
type Options struct {
	// Currency is the shop currency; default EUR.
	Currency money.Currency
	// HoldIdle is how long a cart may go without a write before its promo
	// code hold lapses; default DefaultHoldIdle.
	HoldIdle time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// NewID makes dead letter ids; default uuid.New.
	NewID func() uuid.UUID
	// Logger receives failures of event handling; default discard.
	Logger *slog.Logger

	// EventRate is how many events per second one caller may deliver to
	// this replica (the global rate divided by the number of replicas);
	// default DefaultEventRate.
	EventRate float64
	// EventBurst is the caller's bucket size in events; default one second
	// of EventRate (at least 1), so the burst scales with the share.
	EventBurst int
	// Users bounds what one user can hold of the replica; zero fields take
	// their defaults.
	Users UserLimits
	// InboxRetention is how long a received event id is kept to answer
	// redeliveries DUPLICATE; default DefaultInboxRetention. Older
	// redeliveries are answered STALE by the version gate.
	InboxRetention time.Duration
	// Tracer makes the spans of applying events; default records none.
	Tracer trace.Tracer
	// CartCache sizes the cache of carts GetCart reads; the zero value is
	// off (Run turns it on with --cart-cache-mb). The cache is used only
	// while ListenForVersions hears the other replicas.
	CartCache CartCacheConfig
}

// Service holds what the cart, wishlist, promo code and event handlers
// share.
type Service struct {
	db       *pgxpool.Pool
	q        *cartdb.Queries
	products *productclient.Client
	currency money.Currency
	holdIdle time.Duration
	now      func() time.Time
	newID    func() uuid.UUID
	log      *slog.Logger

	limits         *callerLimits
	fairness       *fairness
	inboxRetention time.Duration
	metrics        *eventMetrics
	obs            *observer
	carts          *cartCache
}

// NewService returns a Service over db that reads products through
// products.
func NewService(db *pgxpool.Pool, products *productclient.Client, opts Options) *Service {
	if opts.Currency == "" {
		opts.Currency = "EUR"
	}
	if opts.HoldIdle <= 0 {
		opts.HoldIdle = DefaultHoldIdle
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NewID == nil {
		opts.NewID = uuid.New
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.EventRate <= 0 {
		opts.EventRate = DefaultEventRate
	}
	if opts.InboxRetention <= 0 {
		opts.InboxRetention = DefaultInboxRetention
	}
	if opts.Tracer == nil {
		opts.Tracer = noop.NewTracerProvider().Tracer("")
	}
	carts, err := newCartCache(opts.CartCache, cartdb.New(db))
	if err != nil {
		opts.Logger.Warn("cart cache off", "error", err)
	}
	return &Service{
		db: db, q: cartdb.New(db), products: products,
		currency: opts.Currency, holdIdle: opts.HoldIdle, now: opts.Now, newID: opts.NewID, log: opts.Logger,
		limits:         newCallerLimits(opts.EventRate, opts.EventBurst),
		fairness:       newFairness(opts.Users.withDefaults()),
		inboxRetention: opts.InboxRetention,
		metrics:        newEventMetrics(),
		obs:            newObserver(opts.Tracer),
		carts:          carts,
	}
}

// Close releases the cart cache; the Service must not be used after.
func (s *Service) Close() { s.carts.close() }

// timestamp is the service's clock at the database's precision.
func (s *Service) timestamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// holdCutoff is the oldest cart update_time at which a hold still counts.
func (s *Service) holdCutoff(now time.Time) time.Time { return now.Add(-s.holdIdle) }

// inTx runs fn with queries bound to one transaction (see pgdb.InTx).
func (s *Service) inTx(ctx context.Context, fn func(q *cartdb.Queries) error) error {
	return pgdb.InTx(ctx, s.db, func(tx pgx.Tx) error { return fn(s.q.WithTx(tx)) })
}

// userID is the caller's user id: the subject of the verified user token.
func userID(ctx context.Context) (string, error) {
	id, ok := auth.FromContext(ctx)
	if !ok || id.Service || id.Subject == "" {
		return "", shoperr.Unauthenticated("a user access token is required")
	}
	if utf8.RuneCountInString(id.Subject) > maxUserID {
		return "", shoperr.PermissionDenied("user ids longer than %d characters are not supported", maxUserID)
	}
	return id.Subject, nil
}

// lookup asks the product client for products, keeping a fifth of the caller's
// remaining time to answer from snapshots should productsvc not answer.
func (s *Service) lookup(ctx context.Context, wants []productclient.Want) (map[uuid.UUID]productclient.Entry, error) {
	if len(wants) == 0 {
		return map[uuid.UUID]productclient.Entry{}, nil
	}
	lctx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		lctx, cancel = context.WithDeadline(ctx, d.Add(-time.Until(d)/5))
		defer cancel()
	}
	products, err := s.products.Lookup(lctx, wants)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return products, err
}

// lineWants asks for the products of the lines that may still be
// available, each at least at the newest version the cart has recorded.
func lineWants(lines []cartLine) []productclient.Want {
	wants := make([]productclient.Want, 0, len(lines))
	for _, l := range lines {
		if !l.Available || l.KnownDeleted {
			continue
		}
		wants = append(wants, productclient.Want{ID: l.ProductID, MinVersion: max(l.ProductVersion, l.KnownVersion)})
	}
	return wants
}

// resolve looks up the products of view's lines (cached or fetched, possibly
// stale or absent: the cart then shows their snapshots) and, live, the
// products in fresh (check them with freshProduct). It fails with NotFound
// when a fresh product is known to be deleted (view's marks), and with
// ctx's error.
func (s *Service) resolve(ctx context.Context, view cartView, fresh []uuid.UUID) (map[uuid.UUID]productclient.Entry, error) {
	lines := view.lines
	wants := lineWants(lines)
	if len(fresh) > 0 {
		min := make(map[uuid.UUID]int64, len(fresh))
		for _, v := range view.marks {
			if v.Deleted {
				return nil, productNotFound(v.ProductID)
			}
			min[v.ProductID] = v.Version
		}
		for _, l := range lines {
			if slices.Contains(fresh, l.ProductID) {
				min[l.ProductID] = max(min[l.ProductID], l.ProductVersion)
			}
		}
		for _, id := range fresh {
			wants = append(wants, productclient.Want{ID: id, MinVersion: min[id], Live: true})
		}
	}
	// An error only means some products fall back to snapshots; fresh ones
	// are checked by freshProduct.
	products, _ := s.lookup(ctx, wants)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return products, nil
}

var errProductsUnavailable = shoperr.Unavailable("the product catalog cannot be reached; retry later")

func productNotFound(id uuid.UUID) error { return shoperr.NotFound("product %s not found", id) }

// sellable reports whether the shop can sell p: priced in its currency
// within the price limit.
func sellable(cur money.Currency, p productclient.Product) bool {
	return !p.Missing && p.Currency == string(cur) && p.PriceMinor >= 0 && p.PriceMinor <= money.MaxPriceMinor
}

// freshProduct returns the live product id from products (see resolve):
// NotFound when deleted, FailedPrecondition when the shop cannot sell it.
func (s *Service) freshProduct(products map[uuid.UUID]productclient.Entry, id uuid.UUID) (productclient.Product, error) {
	e, ok := products[id]
	switch {
	case !ok || e.Stale:
		return productclient.Product{}, errProductsUnavailable
	case e.Missing:
		return productclient.Product{}, productNotFound(id)
	case !sellable(s.currency, e.Product):
		return productclient.Product{}, shoperr.FailedPrecondition("product %s cannot be sold in %s", id, s.currency)
	}
	return e.Product, nil
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
