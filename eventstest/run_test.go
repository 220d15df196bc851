package eventstest_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/decoupledshop/shop/cartsvc"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
)

// runMain runs a service's Run with env as its environment until stop or
// the end of the test, and waits until it is ready.
func runMain(t *testing.T, run func(context.Context, []string, func(string) string, io.Writer, io.Writer) error, env map[string]string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, t.Output()) }()
	shoptest.WaitReady(t, "http://"+env["ADDR"], 20*time.Second, done)
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after cancel: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return within 20s of cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestRunDeliversCatalogChangesToCarts runs the real mains, wired as
// deployed (productsvc with --subscribers cartsvc=<url> and the relay's
// client credentials): a price change reaches the cart line (price_changed,
// also in the stored snapshot), a delete makes the line unavailable, a
// category rename reaches the lines' versions; with cartsvc stopped, 100
// changes all arrive once it is back, none twice.
func TestRunDeliversCatalogChangesToCarts(t *testing.T) {
	t.Parallel()
	iss := shoptest.Issuer(t)
	productAddr, cartAddr := shoptest.FreeAddr(t), shoptest.FreeAddr(t)
	cartDB, productDB := pgtest.NewDatabase(t, pgtest.CartSchema), pgtest.NewDatabase(t, pgtest.ProductSchema)
	productEnv := map[string]string{
		"ADDR": productAddr, "DATABASE_URL": productDB, "OIDC_ISSUER_URL": iss.URL(), "DRAIN_DELAY": "-1s", "ADMIN_ADDR": "127.0.0.1:0",
		"SUBSCRIBERS":     "cartsvc=http://" + cartAddr,
		"RELAY_CLIENT_ID": devissuer.DemoRelayClient, "RELAY_CLIENT_SECRET": devissuer.DemoRelaySecret,
	}
	cartEnv := map[string]string{
		"ADDR": cartAddr, "DATABASE_URL": cartDB, "OIDC_ISSUER_URL": iss.URL(), "DRAIN_DELAY": "-1s", "ADMIN_ADDR": "127.0.0.1:0",
		"PRODUCT_URL": "http://" + productAddr,
	}
	runMain(t, productsvc.Run, productEnv)
	stopCart := runMain(t, cartsvc.Run, cartEnv)
	s := shopAt(t, iss, "http://"+productAddr, productDB)
	c := &cart{url: "http://" + cartAddr, pool: openPool(t, cartDB)}
	alice := s.userToken(t, shoptest.Alice)
	cat := s.createCategory(t, "Garden")
	spade, rake := s.createProduct(t, cat.Id, "SPADE", "SPADE", 2450), s.createProduct(t, cat.Id, "RAKE", "RAKE", 1500)
	c.add(t, alice, spade.Id, 2)
	c.add(t, alice, rake.Id, 2)
	item := func(productID string) *cartv1.CartItem {
		for _, it := range c.getCart(t, alice).Items {
			if it.ProductId == productID {
				return it
			}
		}
		return nil
	}
	c.getCart(t, alice) // the products are cached now, for the cache's TTL (30 s)

	// A price change: within the cache's TTL, the cart shows it.
	began := time.Now()
	s.setPrice(t, spade.Id, 1999)
	eventually(t, 10*time.Second, "the cart shows the new price", func() bool {
		it := item(spade.Id)
		return it.GetUnitPrice().GetAmountMinor() == 1999 && it.GetPriceChanged()
	})
	t.Logf("price change → cart shows it (price_changed): %s", time.Since(began).Round(time.Millisecond))
	if got := c.line(t, shoptest.Alice, spade.Id); got != (storedLine{price: 1999, added: 2450, version: 2, available: true}) {
		t.Errorf("stored line = %+v; want the event's snapshot: 19.99, added at 24.50, version 2", got)
	}

	// A delete.
	s.deleteProduct(t, rake.Id)
	eventually(t, 10*time.Second, "the deleted product's line is unavailable", func() bool { return !item(rake.Id).GetAvailable() })
	if got := c.line(t, shoptest.Alice, rake.Id); got.available || got.price != 1500 {
		t.Errorf("stored line of the deleted product = %+v; want kept with its snapshot, unavailable", got)
	}

	// A category rename bumps its products' versions.
	s.renameCategory(t, cat.Id, "Yard")
	eventually(t, 10*time.Second, "the rename reached the line", func() bool { return c.line(t, shoptest.Alice, spade.Id).version == 3 })

	// cartsvc stopped: 100 changes wait in the outbox and all arrive, once
	// each, when it is back.
	stopCart()
	var last int64
	for i := range 100 {
		last = s.setPrice(t, spade.Id, int64(2000+i)).Version
	}
	runMain(t, cartsvc.Run, cartEnv)
	t.Logf("cartsvc back → the 100 changes made while it was down all delivered: %s",
		s.waitDrained(t, 30*time.Second).Round(time.Millisecond))
	var received, applied int
	if err := c.pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE outcome = 'applied') FROM inbox
		WHERE aggregate_id = $1 AND aggregate_version > 3`, spade.Id).Scan(&received, &applied); err != nil {
		t.Fatal(err)
	}
	if received != 100 {
		t.Errorf("received %d of the 100 changes made while cartsvc was down", received)
	}
	if got := c.line(t, shoptest.Alice, spade.Id); got.price != 2099 || got.version != last {
		t.Errorf("stored line = %+v; want the last change: 20.99 at version %d", got, last)
	}
	t.Logf("of the 100: %d applied, %d stale (an older one arriving after a newer one)", applied, received-applied)
}
