//go:build linux

package eventstest_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
)

// TestLongCrash: 10,000 catalog changes made through productsvc's API
// while cartsvc, a separately built binary run as its own process, is
// SIGKILLed twice mid-stream and PostgreSQL (a dedicated durable cluster
// holding both services' databases) is shut down immediately, as in a
// crash, and restarted once. Afterwards nothing is lost (every cart line
// and version mark equals productsvc's final state, every event is in the
// inbox), nothing is applied twice (the inbox holds each event once,
// triggers saw no version go backwards and no version raised twice), and
// the backlog drains within 60 s of the last restart (asserted without
// -race).
//
// productsvc (with its relay, default settings) runs in this process
// through its real Run. The test is not parallel, so that its timings are
// its own.
func TestLongCrash(t *testing.T) {
	long(t)
	const products, shoppers, changes = 200, 10, 10_000
	ctx := context.Background()
	work := t.TempDir()
	pg := startDurableCluster(t)
	productDB, cartDB := pg.database(t, "productsvc", "product"), pg.database(t, "cartsvc", "cart")
	if err := pgtest.CartSchema.Migrate(ctx, cartDB); err != nil {
		t.Fatal(err)
	}
	auditVersions(t, cartDB)
	iss := issuerWithShoppers(t, shoppers)
	productAddr, cartAddr := shoptest.FreeAddr(t), shoptest.FreeAddr(t)
	runCrashProductsvc(t, logFile(t, work, "productsvc.log"), map[string]string{
		"ADDR": productAddr, "DATABASE_URL": productDB, "OIDC_ISSUER_URL": iss.URL(), "DRAIN_DELAY": "-1s", "ADMIN_ADDR": "127.0.0.1:0", "LOG_LEVEL": "warn",
		"SUBSCRIBERS":     "cartsvc=http://" + cartAddr,
		"RELAY_CLIENT_ID": devissuer.DemoRelayClient, "RELAY_CLIENT_SECRET": devissuer.DemoRelaySecret,
	})
	cart := &cartProcess{t: t, bin: buildCartsvc(t, work), log: logFile(t, work, "cartsvc.log"), env: []string{
		"ADDR=" + cartAddr, "DATABASE_URL=" + cartDB, "OIDC_ISSUER_URL=" + iss.URL(),
		"PRODUCT_URL=http://" + productAddr, "DRAIN_DELAY=0s", "LOG_LEVEL=warn",
	}}
	cart.start()
	t.Cleanup(cart.kill)
	catalog := productv1connect.NewProductServiceClient(shoptest.HTTPClient(), "http://"+productAddr,
		connect.WithInterceptors(shoptest.Bearer(issuertest.UserToken(t, iss, shoptest.Admin))))
	ids := createCrashProducts(t, iss, productAddr, products)
	fillCrashCarts(t, iss, cartAddr, ids, shoppers)

	began := time.Now()
	stream := startPriceChanges(catalog, ids, changes)
	stream.waitFor(changes / 4)
	crashPostgres(t, pg, stream.done.Load())
	var lastRestart time.Time
	for _, at := range []int64{changes / 2, 3 * changes / 4} {
		stream.waitFor(at)
		n, down := stream.done.Load(), time.Now()
		cart.kill()
		cart.start()
		lastRestart = time.Now()
		t.Logf("cartsvc SIGKILLed at change %d and back: %s down", n, lastRestart.Sub(down).Round(time.Millisecond))
	}
	stream.wg.Wait()
	wrote := time.Since(began)

	productPool, cartPool := openPool(t, productDB), openPool(t, cartDB)
	queued := waitOutboxEmpty(t, productPool, lastRestart.Add(3*time.Minute))
	drained, total := time.Since(lastRestart), time.Since(began)
	if queued > 0 {
		t.Fatalf("%d events still queued 3 minutes after the last restart\n%s", queued, cart.tail())
	}
	t.Logf("%d changes (%d failed attempts retried) written in %s; drained %s after the last restart, %s after the last change; %.0f changes/s end to end",
		stream.done.Load(), stream.failed.Load(), wrote.Round(time.Millisecond), drained.Round(time.Millisecond),
		(total - wrote).Round(time.Millisecond), float64(stream.done.Load())/total.Seconds())
	if !raceEnabled && drained > 60*time.Second {
		t.Errorf("drained %s after the last restart, want at most 60 s", drained)
	}
	checkCrashOutcome(t, productPool, cartPool)
}

// issuerWithShoppers starts the dev issuer with the standard identities
// and n users shopper00, shopper01, ...
func issuerWithShoppers(t *testing.T, n int) *devissuer.Issuer {
	issCfg := shoptest.IssuerConfig()
	for i := range n {
		issCfg.Users[fmt.Sprintf("shopper%02d", i)] = devissuer.User{Password: "pw"}
	}
	return issuertest.New(t, issCfg)
}

// runCrashProductsvc runs productsvc's Run in this process with env until
// the test ends, logging to log, and waits until it is ready.
func runCrashProductsvc(t *testing.T, log io.Writer, env map[string]string) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- productsvc.Run(ctx, nil, func(k string) string { return env[k] }, io.Discard, log) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	shoptest.WaitReady(t, "http://"+env["ADDR"], 30*time.Second, done)
}

// createCrashProducts creates n products in one category and returns their
// ids.
func createCrashProducts(t *testing.T, iss *devissuer.Issuer, productAddr string, n int) []string {
	t.Helper()
	ctx := context.Background()
	admin := connect.WithInterceptors(shoptest.Bearer(issuertest.UserToken(t, iss, shoptest.Admin)))
	categories := productv1connect.NewCategoryServiceClient(shoptest.HTTPClient(), "http://"+productAddr, admin)
	catalog := productv1connect.NewProductServiceClient(shoptest.HTTPClient(), "http://"+productAddr, admin)
	cat, err := categories.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: "Crash"}))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		resp, err := catalog.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
			Sku: fmt.Sprintf("CRASH-%03d", i), Name: fmt.Sprintf("Crash %d", i), CategoryId: cat.Msg.Category.Id, Price: eur(int64(100 + i)),
		}))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = resp.Msg.Product.Id
	}
	return ids
}

// fillCrashCarts puts every product into the carts of two of the
// shoppers.
func fillCrashCarts(t *testing.T, iss *devissuer.Issuer, cartAddr string, ids []string, shoppers int) {
	t.Helper()
	for u := range shoppers {
		carts := cartv1connect.NewCartServiceClient(shoptest.HTTPClient(), "http://"+cartAddr,
			connect.WithInterceptors(shoptest.Bearer(issuertest.UserToken(t, iss, fmt.Sprintf("shopper%02d", u)))))
		for i := u % (shoppers / 2); i < len(ids); i += shoppers / 2 {
			if _, err := carts.AddCartItem(context.Background(), connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: ids[i], Quantity: 1})); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// priceChanges is a stream of price changes made by 4 writers until a
// number of them succeeded; failed attempts are retried.
type priceChanges struct {
	done, failed atomic.Int64
	wg           sync.WaitGroup
}

// startPriceChanges starts writers that change the prices of ids, in
// turn, until changes succeeded.
func startPriceChanges(catalog productv1connect.ProductServiceClient, ids []string, changes int64) *priceChanges {
	const writers = 4
	s := &priceChanges{}
	for w := range writers {
		s.wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := w; s.done.Load() < changes; i = (i + writers) % len(ids) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := catalog.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{
					Product:    &productv1.Product{Id: ids[i], Price: eur(1 + rng.Int64N(100_000))},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
				}))
				cancel()
				if err != nil {
					s.failed.Add(1)
					time.Sleep(50 * time.Millisecond)
					continue
				}
				s.done.Add(1)
			}
		})
	}
	return s
}

// waitFor waits until n changes succeeded.
func (s *priceChanges) waitFor(n int64) {
	for s.done.Load() < n {
		time.Sleep(10 * time.Millisecond)
	}
}

// crashPostgres shuts PostgreSQL down immediately and restarts it, and
// logs what that took and what PostgreSQL logged of it.
func crashPostgres(t *testing.T, pg *durableCluster, at int64) {
	t.Helper()
	exited, ready := pg.crashAndRestart(t)
	t.Logf("PostgreSQL shut down immediately at change %d: exited after %s, accepting connections again (crash recovery done) after %s",
		at, exited.Round(time.Millisecond), ready.Round(time.Millisecond))
	var recovery []string
	for line := range strings.SplitSeq(pg.log(), "\n") {
		if strings.Contains(line, " LOG: ") {
			recovery = append(recovery, line)
		}
	}
	t.Logf("PostgreSQL's log of the restart (refused connection attempts left out):\n%s", strings.Join(recovery, "\n"))
}

// waitOutboxEmpty waits until productsvc's outbox is empty or deadline
// passed, and returns the number of events still queued.
func waitOutboxEmpty(t *testing.T, products *pgxpool.Pool, deadline time.Time) int {
	t.Helper()
	for {
		var queued int
		if err := products.QueryRow(context.Background(), "SELECT count(*) FROM outbox").Scan(&queued); err != nil {
			t.Fatal(err)
		}
		if queued == 0 || time.Now().After(deadline) {
			return queued
		}
		time.Sleep(20 * time.Millisecond)
	}
}
