package relay_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/clientcreds"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
	"github.com/decoupledshop/shop/productsvc/relay"
	"github.com/decoupledshop/shop/productsvc/relay/sinktest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var productSchema = pgtest.ProductSchema

const subscriber = "cartsvc"

// testBundle is a product database with an outbox writer, a real issuer, a
// real EventSinkService, and a clock the relays of the test share.
type testBundle struct {
	pool   *pgxpool.Pool
	dbURL  string
	iss    *devissuer.Issuer
	sink   *sinktest.Sink
	clock  *clock
	outbox *productsvc.Outbox
	// notifier wakes relays after publish commits, as the catalog's does.
	notifier *relay.Notifier
	// tokenFetches counts calls to the issuer's token endpoint.
	tokenFetches atomic.Int64
}

func setup(t testing.TB) *testBundle {
	t.Helper()
	pool, dbURL := pgtest.NewPool(t, productSchema)
	iss := shoptest.Issuer(t)
	b := &testBundle{
		pool:  pool,
		dbURL: dbURL,
		iss:   iss,
		sink:  sinktest.Start(t, iss),
		clock: &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)},
	}
	b.outbox = productsvc.NewOutbox([]string{subscriber}, b.clock.Now, nil)
	b.notifier = relay.NewNotifier(pool, 0, nil)
	return b
}

// tokens returns a client-credentials source for the relay's client with
// secret that counts its fetches in b.tokenFetches.
func (b *testBundle) tokens(now func() time.Time, secret string) *clientcreds.Source {
	return clientcreds.New(clientcreds.Config{
		TokenURL: b.iss.URL() + devissuer.TokenPath, ClientID: shoptest.EventsClient, ClientSecret: secret,
		HTTPClient: &http.Client{Transport: countingTransport{&b.tokenFetches, http.DefaultTransport}},
		Now:        now,
	})
}

// newRelay returns a relay delivering to the sink on the bundle's clock,
// with cfg's other settings.
func (b *testBundle) newRelay(t testing.TB, cfg relay.Config) *relay.Relay {
	t.Helper()
	if cfg.Subscribers == nil {
		cfg.Subscribers = []relay.Subscriber{{Name: subscriber, URL: b.sink.URL()}}
	}
	if cfg.Now == nil {
		cfg.Now = b.clock.Now
	}
	if cfg.Tokens == nil {
		cfg.Tokens = b.tokens(cfg.Now, devissuer.DemoRelaySecret)
	}
	r, err := relay.New(b.pool, cfg)
	if err != nil {
		t.Fatalf("relay.New: %v", err)
	}
	return r
}

// run runs r until the test ends.
func run(t testing.TB, r *relay.Relay) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(ctx); err != nil {
			t.Errorf("relay.Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// publish commits n ProductChanged events (one per new product) in one
// transaction, wakes the relays as the catalog does, and returns their
// products' ids in order.
func (b *testBundle) publish(t testing.TB, n int) []uuid.UUID {
	t.Helper()
	products := fakeProducts(n, b.clock.Now())
	err := pgdb.InTx(context.Background(), b.pool, func(tx pgx.Tx) error {
		return b.outbox.ProductsChanged(context.Background(), tx, products)
	})
	if err != nil {
		t.Fatalf("publish %d events: %v", n, err)
	}
	b.notifier.Notify()
	ids := make([]uuid.UUID, n)
	for i, p := range products {
		ids[i] = p.ID
	}
	return ids
}

func fakeProducts(n int, at time.Time) []productdb.Product {
	products := make([]productdb.Product, n)
	category := uuid.New()
	for i := range products {
		products[i] = productdb.Product{
			ID: uuid.New(), Sku: fmt.Sprintf("SKU-%d", i), Name: fmt.Sprintf("Product %d", i),
			CategoryID: category, CategoryName: "Things", PriceMinor: int64(100 + i), CurrencyCode: "EUR",
			Version: 1, CreateTime: at, UpdateTime: at,
		}
	}
	return products
}

// outboxRow is a row's delivery state.
type outboxRow struct {
	EventID       uuid.UUID
	Attempts      int
	NextAttemptAt time.Time
	LockedUntil   *time.Time
	LockedBy      *uuid.UUID
	LastError     string
}

func (b *testBundle) outboxRows(t testing.TB) map[uuid.UUID]outboxRow {
	t.Helper()
	rows, err := b.pool.Query(context.Background(),
		`SELECT event_id, attempts, next_attempt_at, locked_until, locked_by, last_error FROM outbox WHERE subscriber = $1`, subscriber)
	if err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[outboxRow])
	if err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	out := make(map[uuid.UUID]outboxRow, len(got))
	for _, r := range got {
		out[r.EventID] = r
	}
	return out
}

func (b *testBundle) deadLetters(t testing.TB) []productdb.OutboxDead {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT * FROM outbox_dead ORDER BY create_time, event_id`)
	if err != nil {
		t.Fatalf("read outbox_dead: %v", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[productdb.OutboxDead])
	if err != nil {
		t.Fatalf("read outbox_dead: %v", err)
	}
	return got
}

// eventIDs returns the ids of the outbox rows in occurrence order.
func (b *testBundle) eventIDs(t testing.TB) []uuid.UUID {
	t.Helper()
	rows, err := b.pool.Query(context.Background(),
		`SELECT event_id FROM outbox WHERE subscriber = $1 ORDER BY occurred_at, aggregate_version, event_id`, subscriber)
	if err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	return ids
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

type countingTransport struct {
	n    *atomic.Int64
	next http.RoundTripper
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// waitDrained waits until no outbox row is left: the relay records an
// outcome just after the sink answers.
func (b *testBundle) waitDrained(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rows := b.outboxRows(t)
		if len(rows) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still queued after %s, want none", len(rows), timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
