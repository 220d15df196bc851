package eventstest_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/decoupledshop/shop/cartsvc"
	"github.com/decoupledshop/shop/cartsvc/productclient"
	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
	"github.com/decoupledshop/shop/productsvc/relay"
)

// TestEveryEventThreeTimesShuffled: productsvc's relay delivers every
// event three times (three subscribers, all this cartsvc), in shuffled
// order (due times randomized, small batches) and with every deletion
// first, so each ProductChanged of a deleted product arrives late. The
// cart database ends up exactly as another one that received each event
// once, in order, and as productsvc's catalog says: deleted products stay
// deleted.
func TestEveryEventThreeTimesShuffled(t *testing.T) {
	t.Parallel()
	s := newShop(t, "cart1", "cart2", "cart3")
	inOrder := s.newCart(t, "", cartsvc.Options{})
	shuffled := s.newCart(t, "", cartsvc.Options{})
	alice, bob := s.userToken(t, shoptest.Alice), s.userToken(t, shoptest.Bob)

	cat := s.createCategory(t, "Kitchen")
	var products []*productv1.Product
	for i := range 12 {
		products = append(products, s.createProduct(t, cat.Id, fmt.Sprintf("K-%02d", i), fmt.Sprintf("Pot %d", i), int64(1000+i)))
	}
	for _, c := range []*cart{inOrder, shuffled} {
		fillKitchen(t, c, alice, bob, products)
	}
	gone := churnKitchen(t, s, cat.Id, products)

	// The reference: each event once, in order.
	events := s.outboxEvents(t, "cart1")
	for chunk := range slices.Chunk(events, 10) {
		inOrder.deliver(t, issuertest.ServiceToken(t, s.iss, devissuer.DemoRelayClient), chunk)
	}

	// Shuffle: deletions due now, everything else at random moments in
	// the next second; claims of 4 rows.
	if _, err := s.productPool.Exec(context.Background(), `
		UPDATE outbox SET next_attempt_at = CASE WHEN type = 'shop.events.v1.ProductDeleted' THEN now() - interval '1 second'
		                                         ELSE now() + interval '300 milliseconds' + random() * interval '700 milliseconds' END`); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	var subs []relay.Subscriber
	for _, name := range []string{"cart1", "cart2", "cart3"} {
		subs = append(subs, relay.Subscriber{Name: name, URL: shuffled.url})
	}
	s.startRelay(t, relay.Config{Subscribers: subs, MaxBatch: 4})
	s.waitDrained(t, 30*time.Second)
	t.Logf("%d events × 3 deliveries, shuffled, drained in %s", len(events), time.Since(began).Round(time.Millisecond))

	if got, want := shuffled.state(t), inOrder.state(t); got != want {
		t.Errorf("state after 3 shuffled deliveries differs from one in-order delivery:\n%s", lineDiff(got, want))
	}
	if n := shuffled.count(t, "SELECT count(*) FROM inbox"); n != len(events) {
		t.Errorf("%d events received, want each of the %d once", n, len(events))
	}
	dups, _ := strconv.Atoi(shuffled.metric(t, `cartsvc_events_total{result="duplicate"}`))
	if dups < 2*len(events) {
		t.Errorf("%d duplicates answered, want at least %d (each event delivered 3 times)", dups, 2*len(events))
	}
	t.Logf("late ProductChanged after ProductDeleted: %d, all STALE", checkLateChangesStale(t, shuffled, gone))

	// And the carts match the catalog.
	c := shuffled.getCart(t, alice)
	for _, it := range c.Items {
		if slices.Contains(gone, it.ProductId) {
			if it.Available {
				t.Errorf("line of deleted product %s is available", it.ProductId)
			}
			continue
		}
		resp, err := s.products.GetProduct(context.Background(), connect.NewRequest(&productv1.GetProductRequest{Id: it.ProductId}))
		if err != nil {
			t.Fatal(err)
		}
		var name string
		var price, version int64
		if err := shuffled.pool.QueryRow(context.Background(), `SELECT name, unit_price_minor, product_version FROM cart_items
			WHERE product_id = $1 AND user_id = $2`, it.ProductId, devissuer.Subject(shoptest.Alice)).Scan(&name, &price, &version); err != nil {
			t.Fatal(err)
		}
		p := resp.Msg.Product
		if name != p.Name || price != p.Price.AmountMinor || version != p.Version {
			t.Errorf("stored line %q %d v%d, catalog %q %d v%d", name, price, version, p.Name, p.Price.AmountMinor, p.Version)
		}
	}
}

// fillKitchen puts products into alice's and bob's carts and bob's
// wishlist on replica c, the same way on every replica.
func fillKitchen(t *testing.T, c *cart, alice, bob string, products []*productv1.Product) {
	t.Helper()
	for i, p := range products {
		c.add(t, alice, p.Id, int32(1+i%3))
		if i%2 == 0 {
			c.add(t, bob, p.Id, 1)
		}
		if i%3 == 0 {
			c.wish(t, bob, p.Id)
		}
	}
}

// churnKitchen changes every product's price three times and some names,
// renames their category, deletes three of them and changes some of the
// others once more; it returns the deleted ids.
func churnKitchen(t *testing.T, s *shop, categoryID string, products []*productv1.Product) (gone []string) {
	t.Helper()
	for round := range 3 {
		for i, p := range products {
			s.setPrice(t, p.Id, int64(2000+100*round+i))
			if i%4 == round {
				s.rename(t, p.Id, fmt.Sprintf("Pot %d (r%d)", i, round))
			}
		}
	}
	s.renameCategory(t, categoryID, "Cookware") // one ProductChanged per product
	gone = []string{products[1].Id, products[5].Id, products[10].Id}
	for _, id := range gone {
		s.deleteProduct(t, id)
	}
	for i, p := range products {
		if !slices.Contains(gone, p.Id) && i%3 == 1 {
			s.setPrice(t, p.Id, int64(3000+i))
		}
	}
	return gone
}

// checkLateChangesStale checks that every ProductChanged of the gone
// products that c received after their ProductDeleted was STALE, and
// returns how many there were.
func checkLateChangesStale(t *testing.T, c *cart, gone []string) (late int) {
	t.Helper()
	for _, id := range gone {
		var changes, staleAfter int
		if err := c.pool.QueryRow(context.Background(), `
			SELECT count(*), count(*) FILTER (WHERE c.outcome = 'stale' AND c.receive_time > d.receive_time)
			FROM inbox c JOIN inbox d ON d.aggregate_id = c.aggregate_id AND d.type = 'shop.events.v1.ProductDeleted'
			WHERE c.aggregate_id = $1 AND c.type = 'shop.events.v1.ProductChanged'`, id).Scan(&changes, &staleAfter); err != nil {
			t.Fatal(err)
		}
		if staleAfter != changes || changes == 0 {
			t.Errorf("product %s: %d of its %d ProductChanged arrived after its deletion as STALE; want all", id, staleAfter, changes)
		}
		late += staleAfter
	}
	return late
}

// TestCacheInvalidationAcrossReplicas: two cartsvc replicas share one
// database; the relay delivers to the first only. An applied event raises
// the cache floor of the other replica too (Postgres NOTIFY at commit),
// so within its cache TTL it serves no older product data. The delay from
// the applying replica raising its own floor (right after the commit) to
// the other raising its floor is measured over many events.
func TestCacheInvalidationAcrossReplicas(t *testing.T) {
	t.Parallel()
	s := newShop(t, "cartsvc")
	first := s.newCart(t, "", cartsvc.Options{})
	second := s.newCart(t, first.dbURL, cartsvc.Options{})
	alice := s.userToken(t, shoptest.Alice)
	cat := s.createCategory(t, "Lamps")
	lamp := s.createProduct(t, cat.Id, "LAMP-1", "Lamp", 1000)
	first.add(t, alice, lamp.Id, 1)
	id := uuid.MustParse(lamp.Id)

	// The second replica caches the lamp at version 1.
	if got, err := second.catalog.Lookup(context.Background(), []productclient.Want{{ID: id}}); err != nil || got[id].Version != 1 {
		t.Fatalf("second replica's lookup = %v, %v", got, err)
	}
	s.startRelay(t, relay.Config{Subscribers: []relay.Subscriber{{Name: "cartsvc", URL: first.url}}})

	// Through the relay: a price change reaches the second replica's cache.
	began := time.Now()
	v2 := s.setPrice(t, lamp.Id, 1200)
	eventually(t, 10*time.Second, "the second replica's floor rose to version 2", func() bool {
		return second.catalog.ObservedVersion(id) >= v2.Version
	})
	t.Logf("UpdateProduct answered → relay → first replica applied → second replica's cache floor raised: %s", time.Since(began).Round(time.Millisecond))
	got, err := second.catalog.Lookup(context.Background(), []productclient.Want{{ID: id}})
	if err != nil || got[id].Version != v2.Version || got[id].PriceMinor != 1200 {
		t.Errorf("second replica's lookup within the TTL = %+v, %v; want version %d at 12.00, not the cached version 1", got[id], err, v2.Version)
	}
	if c := second.getCart(t, alice); c.Items[0].UnitPrice.GetAmountMinor() != 1200 || !c.Items[0].PriceChanged {
		t.Errorf("cart through the second replica = %v; want 12.00 with price_changed", c)
	}

	// The invalidation delay alone: commit on the first replica → floor
	// raised on the second, for events delivered straight to the first.
	token := issuertest.ServiceToken(t, s.iss, devissuer.DemoRelayClient)
	const samples = 50
	var delays, sinceCall []time.Duration
	for i := range samples {
		p := uuid.New()
		ev := productChangedEvent(p, 1, fmt.Sprintf("Probe %d", i), 100)
		raised := make(chan [2]time.Time, 1)
		go func() {
			var at [2]time.Time
			deadline := time.Now().Add(10 * time.Second)
			for (at[0].IsZero() || at[1].IsZero()) && time.Now().Before(deadline) {
				if at[0].IsZero() && first.catalog.ObservedVersion(p) == 1 {
					at[0] = time.Now()
				}
				if at[1].IsZero() && second.catalog.ObservedVersion(p) == 1 {
					at[1] = time.Now()
				}
				time.Sleep(20 * time.Microsecond)
			}
			raised <- at
		}()
		called := time.Now()
		first.deliver(t, token, []*eventsv1.Event{ev})
		at := <-raised
		if at[0].IsZero() || at[1].IsZero() {
			t.Fatalf("probe %d: floors raised at %v; want both replicas to learn version 1", i, at)
		}
		delays = append(delays, at[1].Sub(at[0]))
		sinceCall = append(sinceCall, at[1].Sub(called))
	}
	for _, d := range []struct {
		what string
		ds   []time.Duration
	}{
		{"applying replica's floor raised (just after its commit) → other replica's floor raised", delays},
		{"DeliverEvents sent → other replica's floor raised (HTTP call and transaction included)", sinceCall},
	} {
		sort.Slice(d.ds, func(i, j int) bool { return d.ds[i] < d.ds[j] })
		t.Logf("invalidation, %s, %d events: min %s, p50 %s, p95 %s, max %s",
			d.what, samples, d.ds[0], d.ds[samples/2], d.ds[samples*95/100], d.ds[samples-1])
	}
}

// lineDiff lists the lines only in got (+) and only in want (-).
func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var out []string
	for _, l := range g {
		if !slices.Contains(w, l) {
			out = append(out, "+ "+l)
		}
	}
	for _, l := range w {
		if !slices.Contains(g, l) {
			out = append(out, "- "+l)
		}
	}
	return strings.Join(out, "\n")
}

// TestRolledBackChangesReachNoCart: 200 price changes of which every tenth
// rolls back after writing its event: exactly the 180 committed ones reach
// cartsvc, each once, and the cart line ends at the last committed one.
func TestRolledBackChangesReachNoCart(t *testing.T) {
	t.Parallel()
	s := newShop(t, "cartsvc")
	c := s.newCart(t, "", cartsvc.Options{})
	alice := s.userToken(t, shoptest.Alice)
	cat := s.createCategory(t, "Tools")
	saw := s.createProduct(t, cat.Id, "SAW", "Saw", 1000)
	c.add(t, alice, saw.Id, 1)
	s.startRelay(t, relay.Config{Subscribers: []relay.Subscriber{{Name: "cartsvc", URL: c.url}}})

	admin := auth.WithIdentity(context.Background(), &auth.Identity{Subject: "admin", Roles: []string{auth.RoleAdmin}})
	products := &productsvc.ProductServer{Store: s.catalog}
	var lastPrice int64
	for i := range 200 {
		ctx, price := admin, int64(2000+i)
		if i%10 == 9 {
			ctx = context.WithValue(admin, rollBack{}, true)
		}
		_, err := products.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{
			Product: &productv1.Product{Id: saw.Id, Price: eur(price)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
		}))
		switch {
		case i%10 == 9 && err == nil:
			t.Fatalf("change %d was to roll back but committed", i)
		case i%10 != 9 && err != nil:
			t.Fatalf("change %d: %v", i, err)
		case err == nil:
			lastPrice = price
		}
	}
	s.waitDrained(t, 30*time.Second)
	var received, versions, maxVersion int
	if err := c.pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT aggregate_version), max(aggregate_version)
		FROM inbox WHERE aggregate_id = $1 AND aggregate_version > 1`, saw.Id).Scan(&received, &versions, &maxVersion); err != nil {
		t.Fatal(err)
	}
	if received != 180 || versions != 180 || maxVersion != 181 {
		t.Errorf("received %d events of the saw's changes (%d versions, up to %d); want exactly the 180 committed, versions 2..181", received, versions, maxVersion)
	}
	var price int64
	if err := c.pool.QueryRow(context.Background(), "SELECT unit_price_minor FROM cart_items WHERE product_id = $1", saw.Id).Scan(&price); err != nil {
		t.Fatal(err)
	}
	if price != lastPrice {
		t.Errorf("cart line price %d, want the last committed %d", price, lastPrice)
	}
}
