package productsvc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/money"
	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/shoperr"
	"github.com/decoupledshop/shop/productsvc/relay"
)

// Store holds what the category and product handlers share: the database,
// the event publisher and the notifier that wakes its relays, the shop
// currency, and the injectable clock and ids.
type Store struct {
	db       *pgxpool.Pool
	q        *productdb.Queries
	planned  *productdb.Queries // q, but planned for each call's arguments (customPlans)
	events   Publisher
	notifier *relay.Notifier // nil when events queues nothing for a relay
	currency money.Currency
	now      func() time.Time
	newID    func() uuid.UUID

	cache     *readCache // nil: reads go to the database
	announcer *announcer // nil: changes are not announced
	log       *slog.Logger
}

// NewStore returns a Store over db that records events with events.
// now and newID may be nil for the wall clock and random UUIDs. When events
// queues events for relays (an Outbox with subscribers, also embedded in
// another Publisher), every committed write wakes them through Notifier.
func NewStore(db *pgxpool.Pool, events Publisher, currency money.Currency, now func() time.Time, newID func() uuid.UUID) *Store {
	if now == nil {
		now = time.Now
	}
	if newID == nil {
		newID = uuid.New
	}
	c := &Store{db: db, q: productdb.New(db), planned: productdb.New(customPlans{db}), events: events, currency: currency, now: now, newID: newID}
	if o, ok := events.(interface{ Subscribers() []string }); ok && len(o.Subscribers()) > 0 {
		c.notifier = relay.NewNotifier(db, relay.DefaultNotifyInterval, nil)
	}
	return c
}

// Notifier is what wakes relays after the catalog's writes commit (give it
// to this process's relay as relay.Config.Notifier); nil when the catalog
// queues no events.
func (c *Store) Notifier() *relay.Notifier { return c.notifier }

// timestamp is the catalog's clock at the database's precision.
func (c *Store) timestamp() time.Time {
	return c.now().UTC().Truncate(time.Microsecond)
}

// inTx runs fn with queries bound to one pipelined transaction (see
// pgdb.InTx and pgdb.Pipelined: a statement run with Exec, such as the
// outbox's INSERT, is sent with the next read or with COMMIT, and reports
// no row count) and, once it has committed, wakes the relays for the
// events it queued. With a
// read cache (or announcements), the products it changed are dropped from
// this replica's cache and announced to the others, after the commit or
// after a failure (whose commit may have happened).
func (c *Store) inTx(ctx context.Context, fn func(tx pgx.Tx, q *productdb.Queries) error) error {
	var changed []uuid.UUID
	err := pgdb.InTx(ctx, pgdb.Pipelined{Pool: c.db}, func(tx pgx.Tx) error {
		if c.announcer == nil {
			return fn(tx, c.q.WithTx(tx))
		}
		ct := &changeTx{Tx: tx}
		defer func() { changed = append(changed, ct.changed...) }() // every attempt's, in case a failed commit committed
		return fn(ct, c.q.WithTx(ct))
	})
	c.cache.drop(changed)
	c.announcer.announce(changed)
	if err == nil {
		c.notifier.Notify()
	}
	return err
}

// EnableReadCache makes GetProduct serve from memory (see readCache) once
// ListenForChanges is connected, and this Store announce the products its
// writes change to the other replicas (also with cfg.MB 0: replicas that
// cache need to hear of them). Call it before serving; log (nil: discard)
// hears of failed announcements and a lost listener. It returns the
// cache's collectors (productsvc_read_cache_lookups_total).
func (c *Store) EnableReadCache(cfg ReadCacheConfig, log *slog.Logger) []prometheus.Collector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c.log = log
	c.announcer = &announcer{q: c.q, log: log}
	c.events = changeRecorder{c.events}
	if cfg.MB == 0 {
		return nil
	}
	c.cache = newReadCache(cfg, c.now)
	return []prometheus.Collector{c.cache.lookups}
}

// cachedList answers a ListProducts request from the read cache when it
// holds the page, else with read, storing its answer. Only answered
// requests are stored, so a hit needs no checks: its request passed them.
func (c *Store) cachedList(m *productv1.ListProductsRequest, read func() (*productv1.ListProductsResponse, error)) (*productv1.ListProductsResponse, error) {
	if c.cache == nil {
		return read()
	}
	key, ok := listKey(m)
	if !ok {
		return read()
	}
	resp, gen, hit := c.cache.getList(key)
	if hit {
		return resp, nil
	}
	resp, err := read()
	if err == nil {
		c.cache.fillList(gen, key, resp)
	}
	return resp, err
}

// product reads a product, from the read cache when it holds it.
func (c *Store) product(ctx context.Context, id uuid.UUID) (productdb.Product, error) {
	p, gen, ok := c.cache.get(id)
	if ok {
		return p, nil
	}
	p, err := c.q.GetProduct(ctx, id)
	if err == nil {
		c.cache.fill(gen, p)
	}
	return p, err
}

// shareLockCategory locks the category a product is created in or moved to,
// so the category cannot be deleted or renamed before the product commits.
func shareLockCategory(ctx context.Context, q *productdb.Queries, field string, id uuid.UUID) (productdb.ShareLockCategoryRow, error) {
	row, err := q.ShareLockCategory(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return row, noCategory(field, id)
	}
	return row, err
}

func noCategory(field string, id uuid.UUID) error {
	return shoperr.Invalid(field, "no category with id %s", id)
}

func notFound(err error, what string, id uuid.UUID) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return shoperr.NotFound("%s %s not found", what, id)
	}
	return err
}

func checkVersion(expected *int64, actual int64, what string) error {
	if expected != nil && *expected != actual {
		return shoperr.Aborted("%s is at version %d, not the expected %d; re-read it and retry", what, actual, *expected)
	}
	return nil
}

// updateMissed explains an update of what id that matched no row, given
// the row read back (current, err): there is no such row (NotFound), it is
// at another version than expected (Aborted, see checkVersion), or it
// changed while it was being updated (Aborted).
func updateMissed(what string, id uuid.UUID, expected *int64, current int64, err error) error {
	if err != nil {
		return notFound(err, what, id)
	}
	if err := checkVersion(expected, current, what); err != nil {
		return err
	}
	return shoperr.Aborted("%s %s changed while it was being updated; re-read it and retry", what, id)
}

// customPlans runs every statement as an unnamed statement that PostgreSQL
// plans for its own arguments (pgx.QueryExecModeCacheDescribe), whatever
// the pool's default. It is for statements whose best plan depends on the
// arguments, where a prepared statement's generic plan can be a thousand
// times slower: a text search matches anything from one product (the GIN
// index is best) to all of them (a walk in list order is), and a generic
// plan must pick one for all.
type customPlans struct{ db productdb.DBTX }

func customMode(args []any) []any { return append([]any{pgx.QueryExecModeCacheDescribe}, args...) }

func (c customPlans) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return c.db.Exec(ctx, sql, customMode(args)...)
}

func (c customPlans) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return c.db.Query(ctx, sql, customMode(args)...)
}

func (c customPlans) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return c.db.QueryRow(ctx, sql, customMode(args)...)
}
