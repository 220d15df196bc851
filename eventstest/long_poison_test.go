package eventstest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/decoupledshop/shop/cartsvc"
	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
	"github.com/decoupledshop/shop/productsvc/relay"
)

// TestLongPoison: 10,000 events (2,000 products × versions 1..5) go
// through productsvc's real outbox and relay to cartsvc; 37 of them are
// poison: the last version of 37 products is priced in USD while the shop
// sells in EUR (cartsvc refuses other currencies). Exactly those 37 land in
// cartsvc's dead-letter queue, the 9,963 others are received (applied, or
// stale when an older version arrived after a newer one), and the rest of
// their batches is unaffected.
//
// The fix, honestly: the stored poison events never change, so what
// changes is the receiver. The shop switches to USD: a cartsvc replica
// configured with --currency USD, on the same database, replays the dead
// letters and applies all 37. (The events are written by the test through
// productsvc's real Outbox publisher, since productsvc itself refuses a
// price in another currency than its own; that is the misconfigured
// sender this stands for.)
func TestLongPoison(t *testing.T) {
	long(t)
	t.Parallel()
	const (
		products = 2000
		versions = 5
		poisoned = 37
	)
	s := newShop(t, "cartsvc")
	c := s.newCart(t, "", cartsvc.Options{})
	ids := make([]uuid.UUID, products)
	for i := range ids {
		ids[i] = uuid.New()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	poison := map[uuid.UUID]bool{}
	for _, i := range rng.Perm(products)[:poisoned] {
		poison[ids[i]] = true
	}
	seedCarts(t, c, ids[:500])

	s.startRelay(t, relay.Config{Subscribers: []relay.Subscriber{{Name: "cartsvc", URL: c.url}}})
	began := time.Now()
	writeVersions(t, s, ids, versions, poison)
	written := time.Since(began)
	s.waitDrained(t, 5*time.Minute)
	took := time.Since(began)
	t.Logf("%d events written in %s, all delivered in %s: %.0f events/s end to end", products*versions, written.Round(time.Millisecond),
		took.Round(time.Millisecond), float64(products*versions)/took.Seconds())

	var dead []uuid.UUID
	rows, err := c.pool.Query(context.Background(), "SELECT aggregate_id FROM event_dlq")
	if err != nil {
		t.Fatal(err)
	}
	if dead, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
		t.Fatal(err)
	}
	if len(dead) != poisoned {
		t.Errorf("%d events in cartsvc's dead-letter queue, want exactly %d", len(dead), poisoned)
	}
	for _, id := range dead {
		if !poison[id] {
			t.Errorf("dead letter for product %s, which was not poisoned", id)
		}
	}
	if n := c.count(t, "SELECT count(*) FROM inbox"); n != products*versions-poisoned {
		t.Errorf("%d events received, want %d", n, products*versions-poisoned)
	}
	if n := c.count(t, "SELECT count(*) FROM product_versions WHERE version = $1", versions); n != products-poisoned {
		t.Errorf("%d products at version %d, want %d", n, versions, products-poisoned)
	}
	if n := s.count(t, "SELECT count(*) FROM outbox_dead"); n != 0 {
		t.Errorf("%d events in productsvc's dead letters; poison is the receiver's to keep", n)
	}
	applied := c.count(t, "SELECT count(*) FROM inbox WHERE outcome = 'applied'")
	t.Logf("cartsvc: %d dead-lettered, %d received (%d applied, %d stale)", len(dead), products*versions-poisoned, applied, products*versions-poisoned-applied)

	// The fix: a replica selling in USD replays them.
	fixed := s.newCart(t, c.dbURL, cartsvc.Options{Currency: "USD"})
	dlq := eventsv1connect.NewDeadLetterServiceClient(shoptest.HTTPClient(), fixed.url, connect.WithInterceptors(shoptest.Bearer(s.admin)))
	resp, err := dlq.ReplayDeadLetters(context.Background(), connect.NewRequest(&eventsv1.ReplayDeadLettersRequest{All: true}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Msg.ReplayedCount != poisoned {
		t.Errorf("replay after the fix replayed %d, want %d", resp.Msg.ReplayedCount, poisoned)
	}
	if n := c.count(t, "SELECT count(*) FROM event_dlq"); n != 0 {
		t.Errorf("%d dead letters left after the replay, want 0", n)
	}
	if n := c.count(t, "SELECT count(*) FROM product_versions WHERE version = $1", versions); n != products {
		t.Errorf("%d products at version %d after the replay, want all %d", n, versions, products)
	}
	if n := c.count(t, "SELECT count(*) FROM inbox WHERE outcome = 'applied' AND aggregate_version = $1", versions); n < poisoned {
		t.Errorf("%d version-%d events applied, want at least the %d replayed", n, versions, poisoned)
	}
	if n := c.count(t, "SELECT count(*) FROM cart_items WHERE currency_code = 'USD'"); n != countIn(ids[:500], poison) {
		t.Errorf("%d cart lines now priced in USD, want the %d lines of replayed products", n, countIn(ids[:500], poison))
	}
}

// writeVersions writes ProductChanged events of versions 1..versions of
// every product in ids into productsvc's outbox for cartsvc, 100 products
// per transaction, through productsvc's real Outbox; the last version of
// the poison products is priced in USD.
func writeVersions(t *testing.T, s *shop, ids []uuid.UUID, versions int64, poison map[uuid.UUID]bool) {
	t.Helper()
	outbox := productsvc.NewOutbox([]string{"cartsvc"}, nil, nil)
	category, created := uuid.New(), time.Now()
	for v := int64(1); v <= versions; v++ {
		for chunk := range slices.Chunk(ids, 100) {
			batch := make([]productdb.Product, len(chunk))
			for i, id := range chunk {
				currency := "EUR"
				if v == versions && poison[id] {
					currency = "USD"
				}
				batch[i] = productdb.Product{
					ID: id, Sku: "P-" + id.String()[:8], Name: fmt.Sprintf("Product %s v%d", id.String()[:8], v),
					CategoryID: category, CategoryName: "Things", PriceMinor: 100*v + int64(i), CurrencyCode: currency,
					Version: v, CreateTime: created, UpdateTime: time.Now(),
				}
			}
			err := pgdb.InTx(context.Background(), s.productPool, func(tx pgx.Tx) error {
				return outbox.ProductsChanged(context.Background(), tx, batch)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

func countIn(ids []uuid.UUID, set map[uuid.UUID]bool) int {
	n := 0
	for _, id := range ids {
		if set[id] {
			n++
		}
	}
	return n
}

// seedCarts puts each of ids in a cart line at version 1 (25 lines per
// user), straight into the cart database: the products exist only as
// events here, so AddCartItem could not fetch them.
func seedCarts(t *testing.T, c *cart, ids []uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	for i, id := range ids {
		user := fmt.Sprintf("user-%03d", i/25)
		if i%25 == 0 {
			if _, err := c.pool.Exec(ctx, "INSERT INTO carts (user_id, create_time, update_time) VALUES ($1, $2, $2)", user, now); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.pool.Exec(ctx, `INSERT INTO cart_items (user_id, product_id, quantity, name, unit_price_minor, added_unit_price_minor,
			currency_code, product_version, available, add_time, update_time) VALUES ($1, $2, 1, 'seeded', 1, 1, 'EUR', 1, true, $3, $3)`, user, id, now); err != nil {
			t.Fatal(err)
		}
	}
}
