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
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
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
	const (
		products = 200
		shoppers = 10
		changes  = 10_000
		writers  = 4
	)
	ctx := context.Background()
	work := t.TempDir()
	pg := startDurableCluster(t)
	productDB, cartDB := pg.database(t, "productsvc", "product"), pg.database(t, "cartsvc", "cart")
	if err := pgtest.CartSchema.Migrate(ctx, cartDB); err != nil {
		t.Fatal(err)
	}
	auditVersions(t, cartDB)

	issCfg := shoptest.IssuerConfig()
	for i := range shoppers {
		issCfg.Users[fmt.Sprintf("shopper%02d", i)] = devissuer.User{Password: "pw"}
	}
	iss := issuertest.New(t, issCfg)
	productAddr, cartAddr := shoptest.FreeAddr(t), shoptest.FreeAddr(t)

	productLog := logFile(t, work, "productsvc.log")
	productCtx, stopProducts := context.WithCancel(ctx)
	productDone := make(chan error, 1)
	go func() {
		env := map[string]string{
			"ADDR": productAddr, "DATABASE_URL": productDB, "OIDC_ISSUER_URL": iss.URL(), "DRAIN_DELAY": "-1s", "ADMIN_ADDR": "127.0.0.1:0", "LOG_LEVEL": "warn",
			"SUBSCRIBERS":     "cartsvc=http://" + cartAddr,
			"RELAY_CLIENT_ID": devissuer.DemoRelayClient, "RELAY_CLIENT_SECRET": devissuer.DemoRelaySecret,
		}
		productDone <- productsvc.Run(productCtx, nil, func(k string) string { return env[k] }, io.Discard, productLog)
	}()
	t.Cleanup(func() {
		stopProducts()
		<-productDone
	})
	shoptest.WaitReady(t, "http://"+productAddr, 30*time.Second, productDone)

	bin := buildCartsvc(t, work)
	cart := &cartProcess{t: t, bin: bin, log: logFile(t, work, "cartsvc.log"), env: []string{
		"ADDR=" + cartAddr, "DATABASE_URL=" + cartDB, "OIDC_ISSUER_URL=" + iss.URL(),
		"PRODUCT_URL=http://" + productAddr, "DRAIN_DELAY=0s", "LOG_LEVEL=warn",
	}}
	cart.start()
	t.Cleanup(cart.kill)

	// The catalog, and carts holding every product.
	admin := connect.WithInterceptors(shoptest.Bearer(issuertest.UserToken(t, iss, shoptest.Admin)))
	categories := productv1connect.NewCategoryServiceClient(shoptest.HTTPClient(), "http://"+productAddr, admin)
	catalog := productv1connect.NewProductServiceClient(shoptest.HTTPClient(), "http://"+productAddr, admin)
	cat, err := categories.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: "Crash"}))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, products)
	for i := range ids {
		resp, err := catalog.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
			Sku: fmt.Sprintf("CRASH-%03d", i), Name: fmt.Sprintf("Crash %d", i), CategoryId: cat.Msg.Category.Id, Price: eur(int64(100 + i)),
		}))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = resp.Msg.Product.Id
	}
	for u := range shoppers {
		carts := cartv1connect.NewCartServiceClient(shoptest.HTTPClient(), "http://"+cartAddr,
			connect.WithInterceptors(shoptest.Bearer(issuertest.UserToken(t, iss, fmt.Sprintf("shopper%02d", u)))))
		for i := u % (shoppers / 2); i < products; i += shoppers / 2 { // each product in two carts
			if _, err := carts.AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: ids[i], Quantity: 1})); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The stream: writers change prices until 10,000 changes succeeded.
	var done, failed atomic.Int64
	began := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := w; done.Load() < changes; i = (i + writers) % products {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := catalog.UpdateProduct(cctx, connect.NewRequest(&productv1.UpdateProductRequest{
					Product:    &productv1.Product{Id: ids[i], Price: eur(1 + rng.Int64N(100_000))},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
				}))
				cancel()
				if err != nil {
					failed.Add(1)
					time.Sleep(50 * time.Millisecond)
					continue
				}
				done.Add(1)
			}
		})
	}
	waitFor := func(n int64) {
		for done.Load() < n {
			time.Sleep(10 * time.Millisecond)
		}
	}

	waitFor(changes / 4)
	at := done.Load()
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

	var lastRestart time.Time
	for _, at := range []int64{changes / 2, 3 * changes / 4} {
		waitFor(at)
		n := done.Load()
		down := time.Now()
		cart.kill()
		cart.start()
		lastRestart = time.Now()
		t.Logf("cartsvc SIGKILLed at change %d and back: %s down", n, lastRestart.Sub(down).Round(time.Millisecond))
	}
	wg.Wait()
	wrote := time.Since(began)

	products2, err := pgxpool.New(ctx, productDB)
	if err != nil {
		t.Fatal(err)
	}
	defer products2.Close()
	var queued int
	for {
		if err := products2.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&queued); err != nil {
			t.Fatal(err)
		}
		if queued == 0 || time.Since(lastRestart) > 3*time.Minute {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	drained := time.Since(lastRestart)
	total := time.Since(began)
	if queued > 0 {
		t.Fatalf("%d events still queued 3 minutes after the last restart\n%s", queued, cart.tail())
	}
	t.Logf("%d changes (%d failed attempts retried) written in %s; drained %s after the last restart, %s after the last change; %.0f changes/s end to end",
		done.Load(), failed.Load(), wrote.Round(time.Millisecond), drained.Round(time.Millisecond),
		(total - wrote).Round(time.Millisecond), float64(done.Load())/total.Seconds())
	if !raceEnabled && drained > 60*time.Second {
		t.Errorf("drained %s after the last restart, want at most 60 s", drained)
	}

	carts2, err := pgxpool.New(ctx, cartDB)
	if err != nil {
		t.Fatal(err)
	}
	defer carts2.Close()
	checkCrashOutcome(t, products2, carts2)
}

// checkCrashOutcome compares cartsvc's database with productsvc's: no
// event lost, none applied twice.
func checkCrashOutcome(t *testing.T, products, carts *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	count := func(pool *pgxpool.Pool, sql string) int {
		var n int
		if err := pool.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	events := count(products, "SELECT (SELECT coalesce(sum(version), 0) FROM products) + (SELECT coalesce(sum(version), 0) FROM categories)")
	received := count(carts, "SELECT count(*) FROM inbox")
	t.Logf("events published (every version of every product and category): %d; received by cartsvc: %d", events, received)
	if received != events {
		t.Errorf("cartsvc received %d distinct events, productsvc published %d", received, events)
	}
	for what, sql := range map[string]string{
		"events dead-lettered by productsvc":       "SELECT count(*) FROM outbox_dead",
		"events dead-lettered by cartsvc":          "SELECT count(*) FROM event_dlq",
		"version regressions seen by the triggers": "SELECT count(*) FROM version_regressions",
		"versions raised more than once":           "SELECT count(*) - count(DISTINCT (product_id, version)) FROM version_raises",
	} {
		pool := carts
		if strings.Contains(what, "productsvc") {
			pool = products
		}
		if n := count(pool, sql); n != 0 {
			t.Errorf("%s: %d, want 0", what, n)
		}
	}

	type state struct {
		name     string
		price    int64
		currency string
		version  int64
	}
	want := map[uuid.UUID]state{}
	rows, err := products.Query(ctx, "SELECT id, name, price_minor, currency_code, version FROM products")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		var s state
		if err := rows.Scan(&id, &s.name, &s.price, &s.currency, &s.version); err != nil {
			t.Fatal(err)
		}
		want[id] = s
	}
	if rows.Close(); rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	marks := map[uuid.UUID]int64{}
	rows, err = carts.Query(ctx, "SELECT product_id, version FROM product_versions")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		marks[id] = v
	}
	if rows.Close(); rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	wrongMarks := 0
	for id, s := range want {
		if marks[id] != s.version {
			wrongMarks++
		}
	}
	lines, err := carts.Query(ctx, "SELECT product_id, name, unit_price_minor, currency_code, product_version FROM cart_items")
	if err != nil {
		t.Fatal(err)
	}
	var checked, wrongLines int
	for lines.Next() {
		var id uuid.UUID
		var s state
		if err := lines.Scan(&id, &s.name, &s.price, &s.currency, &s.version); err != nil {
			t.Fatal(err)
		}
		checked++
		if s != want[id] {
			wrongLines++
			if wrongLines <= 5 {
				t.Errorf("cart line of %s = %+v, productsvc has %+v", id, s, want[id])
			}
		}
	}
	if lines.Close(); lines.Err() != nil {
		t.Fatal(lines.Err())
	}
	if wrongMarks > 0 || wrongLines > 0 || checked != 2*len(want) {
		t.Errorf("%d of %d version marks and %d of %d cart lines differ from productsvc (want 0, and %d lines)",
			wrongMarks, len(want), wrongLines, checked, 2*len(want))
	}
	t.Logf("checked %d cart lines and %d version marks against productsvc: all equal", checked, len(want))
}

// auditVersions installs triggers on the cart database that record every
// version mark raised and every version mark or cart line snapshot that
// goes backwards (or a tombstone lifted).
func auditVersions(t *testing.T, dbURL string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), `
		CREATE TABLE version_regressions (what text, product_id uuid, old_version bigint, new_version bigint);
		CREATE TABLE version_raises (product_id uuid, version bigint);
		CREATE FUNCTION audit_marks() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF TG_OP = 'UPDATE' AND (NEW.version < OLD.version OR (OLD.deleted AND NOT NEW.deleted)) THEN
				INSERT INTO version_regressions VALUES ('mark', NEW.product_id, OLD.version, NEW.version);
			END IF;
			INSERT INTO version_raises VALUES (NEW.product_id, NEW.version);
			RETURN NEW;
		END $$;
		CREATE TRIGGER audit_marks AFTER INSERT OR UPDATE ON product_versions FOR EACH ROW EXECUTE FUNCTION audit_marks();
		CREATE FUNCTION audit_lines() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.product_version < OLD.product_version THEN
				INSERT INTO version_regressions VALUES ('line', NEW.product_id, OLD.product_version, NEW.product_version);
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER audit_lines AFTER UPDATE ON cart_items FOR EACH ROW EXECUTE FUNCTION audit_lines();`)
	if err != nil {
		t.Fatalf("install the audit triggers: %v", err)
	}
}
