package faulttest_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/shopload"
)

// TestLongFaultPostgresRestart: PostgreSQL restarted immediately
// (`pg_ctl restart -m immediate`) under mixed traffic at ~200 rps whose
// writes retry Unavailable and ResourceExhausted (cart writes with the same
// request_id). Then no acknowledged write is lost (cart quantities and
// product versions in the databases hold every acknowledged change), no
// request is answered `internal`, every failure is Unavailable (or, for a
// write whose client gave up retrying, the per-user limit's
// ResourceExhausted), and nothing fails that started more than 5 s after
// PostgreSQL accepted connections again.
func TestLongFaultPostgresRestart(t *testing.T) {
	long(t)
	b := setup(t, shopload.StackConfig{})
	var mu sync.Mutex
	added := map[[2]string]int{}  // (user subject, product) → acknowledged adds
	updated := map[string]int64{} // product → highest acknowledged version
	onAdd := func(a shopload.AddedItem) {
		mu.Lock()
		added[[2]string{devissuer.Subject(b.shop.Users[a.User].Name), a.ProductID}] += int(a.Quantity)
		mu.Unlock()
	}
	onUpdate := func(a shopload.Ack) {
		mu.Lock()
		updated[a.ProductID] = max(updated[a.ProductID], a.Version)
		mu.Unlock()
	}
	tl := &timeline{}
	var down, ready time.Time
	during(t, b, b.shop.Mix(shopload.RetryTransient, onAdd, onUpdate), tl, 30*time.Second, 10*time.Second, func() {
		down = time.Now()
		var err error
		if ready, err = b.st.RestartPostgres(context.Background()); err != nil {
			t.Fatalf("restart PostgreSQL: %v", err)
		}
	})
	t.Logf("PostgreSQL shut down immediately at %s and accepting connections again %s later", down.Format("15:04:05.000"), ready.Sub(down).Round(time.Millisecond))
	t.Logf("answers by request kind (writes retried Unavailable and ResourceExhausted until their 10 s deadline):\n%s", tl.summary())

	checkAcknowledgedWritesHeld(t, b, added, updated)
	checkOutageAnswers(t, tl, down, ready)
}

// checkAcknowledgedWritesHeld compares what the databases hold with the
// writes acknowledged: added (user subject, product) → cart adds, updated
// product → highest version.
func checkAcknowledgedWritesHeld(t *testing.T, b *bundle, added map[[2]string]int, updated map[string]int64) {
	t.Helper()
	ctx := context.Background()
	lostAdds, extraAdds := 0, 0
	conn, err := pgx.Connect(ctx, b.st.CartDB)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	held := map[[2]string]int{}
	rows, _ := conn.Query(ctx, "SELECT user_id, product_id::text, quantity FROM cart_items")
	for rows.Next() {
		var k [2]string
		var q int
		if err := rows.Scan(&k[0], &k[1], &q); err != nil {
			t.Fatal(err)
		}
		held[k] = q
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, u := range b.shop.Users {
		for _, id := range u.Lines {
			k := [2]string{devissuer.Subject(u.Name), id}
			want := 1 + added[k] // seeded with 1
			if got := held[k]; got < want {
				lostAdds += want - got
			} else {
				extraAdds += got - want
			}
		}
	}
	pconn, err := pgx.Connect(ctx, b.st.ProductDB)
	if err != nil {
		t.Fatal(err)
	}
	defer pconn.Close(ctx)
	lostUpdates := 0
	for id, v := range updated {
		var have int64
		if err := pconn.QueryRow(ctx, "SELECT version FROM products WHERE id = $1", id).Scan(&have); err != nil {
			t.Fatal(err)
		}
		if have < v {
			lostUpdates++
		}
	}
	nAdds := 0
	for _, n := range added {
		nAdds += n
	}
	t.Logf("acknowledged: %d cart adds, updates to %d products; lost: %d adds, %d updates; applied without an acknowledgement (the client gave up): %d adds",
		nAdds, len(updated), lostAdds, lostUpdates, extraAdds)
	if lostAdds > 0 || lostUpdates > 0 {
		t.Errorf("acknowledged writes lost: %d cart adds, %d product updates; want none", lostAdds, lostUpdates)
	}

}

// checkOutageAnswers checks the failures of the requests in tl around a
// PostgreSQL outage from down to ready: Unavailable (or a retried
// ResourceExhausted) only, never internal, none started 5 s after ready.
func checkOutageAnswers(t *testing.T, tl *timeline, down, ready time.Time) {
	t.Helper()
	failed := tl.matching("", func(o outcome) bool { return o.code != "" })
	byCode := codes(failed)
	if n := byCode["internal"]; n > 0 {
		t.Errorf("%d requests answered internal during the restart, want 0 (a database outage must be Unavailable): failures by code %v", n, byCode)
	}
	// A write that kept getting Unavailable (or ResourceExhausted: the
	// user's earlier write still held their turn) until the client gave
	// up ends with that answer; anything else is the service failing.
	for _, o := range failed {
		if o.code != "unavailable" && o.code != "resource_exhausted" {
			t.Logf("  %s %s: started %s from the shutdown, answered after %v", o.op, o.code, since(down, o.start), o.end.Sub(o.start).Round(time.Millisecond))
		}
	}
	if other := len(failed) - byCode["unavailable"] - byCode["resource_exhausted"]; other > 0 {
		t.Errorf("%d failures were not Unavailable (by code: %v; deadline_exceeded: the service held the request past the client's 10 s deadline instead of answering); a database outage must answer only Unavailable, promptly, so clients retry", other, byCode)
	}
	late := tl.matching("", func(o outcome) bool { return o.code != "" && o.start.After(ready.Add(5*time.Second)) })
	if len(failed) > 0 {
		last := failed[len(failed)-1]
		t.Logf("failures: %d, first started %s and last %s from PostgreSQL being ready", len(failed), since(ready, failed[0].start), since(ready, last.start))
	}
	if len(late) > 0 {
		t.Errorf("%d requests started more than 5 s after PostgreSQL was ready still failed (codes %v; the last started %s after): recovery must take at most 5 s",
			len(late), codes(late), since(ready, late[len(late)-1].start))
	}
}

// TestLongFaultSlowProducts: productsvc's answers to cartsvc delayed
// 800 ms beyond cartsvc's call deadline (500 ms), through a TCP proxy,
// under mixed traffic at ~200 rps. cartsvc's product cache lives 200 ms,
// so GetCart needs productsvc: it must answer within its own deadline
// (2 s) from the carts' snapshots, marked stale.
func TestLongFaultSlowProducts(t *testing.T) {
	long(t)
	productAddr, err := shopload.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr, err := shopload.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, proxyAddr, productAddr)
	const callDeadline, slower, getCartDeadline = 500 * time.Millisecond, 800 * time.Millisecond, 2 * time.Second
	b := setup(t, shopload.StackConfig{
		ProductAddr: productAddr, CartProductURL: "http://" + proxyAddr,
		CartArgs: []string{"--product-timeout", callDeadline.String(), "--product-cache-ttl", "200ms"},
	})
	var mu sync.Mutex
	var slowFrom time.Time
	var stale, fresh int
	var lats []time.Duration
	var failures []string
	slowGetCart := func(ctx context.Context, w *shopload.Worker) error {
		ctx, cancel := context.WithTimeout(ctx, getCartDeadline)
		defer cancel()
		start := time.Now()
		var wasStale bool
		err := b.shop.GetCart(b.shop.Clients.Cart, func(s bool) { wasStale = s })(ctx, w)
		mu.Lock()
		defer mu.Unlock()
		if slowFrom.IsZero() || start.Before(slowFrom.Add(time.Second)) {
			return err // before the fault, or while entries are still fresh
		}
		lats = append(lats, time.Since(start))
		switch {
		case err != nil:
			failures = append(failures, fmt.Sprintf("%s after %s", shopload.ErrorCode(err), time.Since(start).Round(time.Millisecond)))
		case wasStale:
			stale++
		default:
			fresh++
		}
		return err
	}
	mix := b.shop.Mix(shopload.NoRetry, nil, nil)
	for i := range mix {
		if mix[i].Name == "GetCart" {
			mix[i].Op = slowGetCart
		}
	}
	tl := &timeline{}
	during(t, b, mix, tl, 25*time.Second, 5*time.Second, func() {
		mu.Lock()
		slowFrom = time.Now()
		mu.Unlock()
		px.setDelay(callDeadline + slower)
	})
	t.Logf("answers by request kind (productsvc's answers to cartsvc delayed %s from 5 s on):\n%s", callDeadline+slower, tl.summary())
	mu.Lock()
	defer mu.Unlock()
	var p50, p99, worst time.Duration
	if len(lats) > 0 {
		s := append([]time.Duration(nil), lats...)
		slices.Sort(s)
		p50, p99, worst = s[len(s)/2], s[len(s)*99/100], s[len(s)-1]
	}
	t.Logf("GetCart while productsvc was slow: %d stale, %d fresh, %d failed; latency p50 %s, p99 %s, max %s (deadline %s)",
		stale, fresh, len(failures), p50.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond), getCartDeadline)
	if len(failures) > 0 {
		t.Errorf("%d of %d GetCart calls failed while productsvc was slow (first: %s); want every one answered within its %s deadline from snapshots, stale",
			len(failures), len(lats), failures[0], getCartDeadline)
	}
	if stale == 0 || fresh > stale/10 {
		t.Errorf("GetCart answered %d stale and %d fresh while productsvc could not answer in time; want stale answers (a fresh one needs productsvc)", stale, fresh)
	}
}

// TestLongFaultProductsRestart: productsvc SIGKILLed under mixed traffic at
// ~200 rps, down 5 s, then started again: cart writes (AddCartItem, which
// checks the product with productsvc) must succeed within 2 s of it being
// ready, and none may fail after that.
func TestLongFaultProductsRestart(t *testing.T) {
	long(t)
	b := setup(t, shopload.StackConfig{})
	tl := &timeline{}
	var killed, ready time.Time
	during(t, b, b.shop.Mix(shopload.RetryBusy, nil, nil), tl, 50*time.Second, 10*time.Second, func() {
		killed = time.Now()
		b.st.Products.Kill()
		time.Sleep(5 * time.Second)
		if err := b.st.Products.Start(time.Minute); err != nil {
			t.Errorf("restart productsvc: %v", err)
		}
		ready = time.Now()
	})
	t.Logf("productsvc killed at %s, ready again %s later", killed.Format("15:04:05.000"), ready.Sub(killed).Round(time.Millisecond))
	t.Logf("answers by request kind:\n%s", tl.summary())
	if ready.IsZero() {
		return
	}
	after := tl.matching("AddCartItem", func(o outcome) bool { return o.start.After(ready) })
	firstOK := -1
	for i, o := range after {
		if o.code == "" {
			firstOK = i
			break
		}
	}
	failedAfter := tl.matching("AddCartItem", func(o outcome) bool { return o.code != "" && o.start.After(ready) })
	late := tl.matching("AddCartItem", func(o outcome) bool { return o.code != "" && o.start.After(ready.Add(2*time.Second)) })
	switch {
	case firstOK < 0:
		t.Errorf("no AddCartItem succeeded in the %s after productsvc was ready again (%d failed: %v); want success within 2 s",
			time.Since(ready).Round(time.Second), len(failedAfter), codes(failedAfter))
	default:
		first := after[firstOK]
		t.Logf("AddCartItem after productsvc was ready: first success started %s; %d failed (%v), the last started %s",
			since(ready, first.start), len(failedAfter), codes(failedAfter), lastStart(ready, failedAfter))
		if first.start.After(ready.Add(2 * time.Second)) {
			t.Errorf("cart writes first succeeded %s after productsvc was ready; want within 2 s (the breaker must probe sooner)", since(ready, first.start))
		}
	}
	if len(late) > 0 {
		t.Errorf("%d AddCartItem calls started more than 2 s after productsvc was ready failed (codes %v; the last started %s after): want none",
			len(late), codes(late), since(ready, late[len(late)-1].start))
	}
}

func lastStart(ref time.Time, os []outcome) string {
	if len(os) == 0 {
		return "-"
	}
	return since(ref, os[len(os)-1].start)
}
