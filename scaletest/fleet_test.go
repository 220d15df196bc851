package scaletest_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/shopload"
)

// The fleet every long test runs: 2 productsvc and 3 cartsvc replicas, one
// durable PostgreSQL behind PgBouncer, a small shop.
const (
	productReplicas = 2
	cartReplicas    = 3
	products        = 200
	users           = 20
	lines           = 10
	// eventsRate is cartsvc's --events-rate (all replicas together), low
	// enough that the price storm runs into it.
	eventsRate = 80
	// eventsBurst is each replica's bucket, as docs/EVENTS.md documents
	// it: one second of the replica's share, rate ÷ replicas, rounded up.
	eventsBurst = (eventsRate + cartReplicas - 1) / cartReplicas
	// relayLease is productsvc's --relay-lease: how late events held by a
	// relay that stopped mid-lease may be.
	relayLease = 10 * time.Second
	// drainDelay is every replica's --drain-delay: readiness is off this
	// long before the listener closes, well over the balancer's
	// shopload.CheckEvery.
	drainDelay = time.Second
)

// fleet is the started, seeded fleet with events on.
type fleet struct {
	st   *shopload.Stack
	shop *shopload.Shop
	lb   *shopload.Balancer
	// initial is every product's version when events were turned on:
	// each later version is one event.
	initial map[string]int64

	mu      sync.Mutex
	added   map[[2]string]int // (user subject, product) → acknowledged adds
	updated int
}

// startFleet starts the fleet, seeds it through the balancer, and turns
// events on.
func startFleet(t *testing.T) *fleet {
	t.Helper()
	ctx := context.Background()
	log := &testLog{t: t}
	st, err := shopload.StartStack(ctx, shopload.StackConfig{
		Users: users, Log: log, ProductReplicas: productReplicas, CartReplicas: cartReplicas, PgBouncer: true,
		RelayLease: relayLease, DrainDelay: drainDelay,
		CartArgs: []string{"--events-rate", fmt.Sprint(eventsRate)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	clients, lb := st.BalancedClients(128)
	t.Cleanup(lb.Close)
	shop, err := shopload.Seed(ctx, st.Target(), shopload.SeedConfig{Products: products, Users: users, Lines: lines}, clients, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnableEvents(); err != nil {
		t.Fatal(err)
	}
	f := &fleet{st: st, shop: shop, lb: lb, added: map[[2]string]int{}}
	f.initial = f.productVersions(t)
	return f
}

// mix is the load's traffic, every write retrying Unavailable and
// ResourceExhausted (cart writes with the same request_id), acknowledged
// writes counted.
func (f *fleet) mix() []shopload.MixOp {
	return f.shop.Mix(shopload.RetryTransient, func(a shopload.AddedItem) {
		f.mu.Lock()
		f.added[[2]string{devissuer.Subject(f.shop.Users[a.User].Name), a.ProductID}] += int(a.Quantity)
		f.mu.Unlock()
	}, func(shopload.Ack) {
		f.mu.Lock()
		f.updated++
		f.mu.Unlock()
	})
}

// productVersions reads every product's version.
func (f *fleet) productVersions(t *testing.T) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	query(t, f.st.ProductDB, "SELECT id::text, version FROM products", func(rows pgx.Rows) error {
		var id string
		var v int64
		err := rows.Scan(&id, &v)
		out[id] = v
		return err
	})
	return out
}

// query runs sql on url and calls row for each row.
func query(t *testing.T, url, sql string, row func(pgx.Rows) error, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, sql, args...)
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// count runs a one-number query.
func count(t *testing.T, url, sql string, args ...any) int {
	t.Helper()
	var n int
	query(t, url, sql, func(rows pgx.Rows) error { return rows.Scan(&n) }, args...)
	return n
}

// waitDelivered waits until the outbox is empty (at most timeout) and
// returns how long that took.
func (f *fleet) waitDelivered(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		n := count(t, f.st.ProductDB, "SELECT count(*) FROM outbox")
		if n == 0 {
			return time.Since(began)
		}
		if time.Since(began) > timeout {
			t.Fatalf("%d events still in the outbox %s after the load", n, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// delivery is what the databases say about the events.
type delivery struct {
	events   int            // product versions made since events were on: one event each
	received int            // inbox rows of those
	outcomes map[string]int // inbox rows by outcome
}

// checkExactlyOnce asserts that every product version made since events
// were turned on reached cartsvc exactly once (one inbox row per version,
// none missing, none twice, nothing dead-lettered on either side), and
// that every cart line holds its product's final version and price.
func (f *fleet) checkExactlyOnce(t *testing.T) delivery {
	t.Helper()
	final := f.productVersions(t)
	d := delivery{outcomes: map[string]int{}}
	for id, v := range final {
		d.events += int(v - f.initial[id])
	}
	type seen struct{ rows, versions, lo, hi int64 }
	got := map[string]seen{}
	query(t, f.st.CartDB, `SELECT aggregate_id::text, count(*), count(DISTINCT aggregate_version), min(aggregate_version), max(aggregate_version)
		FROM inbox WHERE type LIKE '%ProductChanged' GROUP BY 1`, func(rows pgx.Rows) error {
		var id string
		var s seen
		err := rows.Scan(&id, &s.rows, &s.versions, &s.lo, &s.hi)
		got[id] = s
		return err
	})
	query(t, f.st.CartDB, "SELECT outcome, count(*) FROM inbox GROUP BY 1", func(rows pgx.Rows) error {
		var o string
		var n int
		err := rows.Scan(&o, &n)
		d.outcomes[o] = n
		return err
	})
	var wrong []string
	for id, v := range final {
		want := v - f.initial[id]
		s := got[id]
		d.received += int(s.rows)
		if s.rows != want || s.versions != want || (want > 0 && (s.lo != f.initial[id]+1 || s.hi != v)) {
			wrong = append(wrong, fmt.Sprintf("%s: versions %d..%d made, inbox holds %d rows of %d versions (%d..%d)", id, f.initial[id]+1, v, s.rows, s.versions, s.lo, s.hi))
		}
	}
	slices.Sort(wrong)
	if len(wrong) > 0 {
		t.Errorf("%d products' events not received exactly once, e.g.:\n  %s", len(wrong), strings.Join(wrong[:min(5, len(wrong))], "\n  "))
	}
	if n := count(t, f.st.ProductDB, "SELECT count(*) FROM outbox_dead"); n > 0 {
		t.Errorf("%d events dead-lettered by the relays, want 0", n)
	}
	if n := count(t, f.st.CartDB, "SELECT count(*) FROM event_dlq"); n > 0 {
		t.Errorf("%d events dead-lettered by cartsvc, want 0", n)
	}
	prices := map[string][2]int64{}
	query(t, f.st.ProductDB, "SELECT id::text, version, price_minor FROM products", func(rows pgx.Rows) error {
		var id string
		var vp [2]int64
		err := rows.Scan(&id, &vp[0], &vp[1])
		prices[id] = vp
		return err
	})
	behind := 0
	query(t, f.st.CartDB, "SELECT product_id::text, product_version, unit_price_minor FROM cart_items", func(rows pgx.Rows) error {
		var id string
		var vp [2]int64
		err := rows.Scan(&id, &vp[0], &vp[1])
		if p, ok := prices[id]; ok && vp != p {
			behind++
		}
		return err
	})
	if behind > 0 {
		t.Errorf("%d cart lines do not hold their product's final version and price", behind)
	}
	return d
}

// checkCartWrites asserts that every acknowledged add is in the carts
// once: none lost, none applied twice; at most gaveUp adds whose client
// gave up retrying may be applied without an acknowledgement.
func (f *fleet) checkCartWrites(t *testing.T, gaveUp int) (acked int) {
	t.Helper()
	held := map[[2]string]int{}
	query(t, f.st.CartDB, "SELECT user_id, product_id::text, quantity FROM cart_items", func(rows pgx.Rows) error {
		var k [2]string
		var q int
		err := rows.Scan(&k[0], &k[1], &q)
		held[k] = q
		return err
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	lost, extra := 0, 0
	for _, u := range f.shop.Users {
		for _, id := range u.Lines {
			k := [2]string{devissuer.Subject(u.Name), id}
			want := 1 + f.added[k] // seeded with 1
			acked += f.added[k]
			if got := held[k]; got < want {
				lost += want - got
			} else {
				extra += got - want
			}
		}
	}
	if lost > 0 || extra > gaveUp {
		t.Errorf("of %d acknowledged cart adds, %d lost and %d applied twice or unacknowledged; want 0, and at most the %d adds whose client gave up", acked, lost, extra, gaveUp)
	}
	return acked
}

// relayWork scrapes each productsvc replica's relay, in ProductProcs'
// order: the events (single attempts) it delivered and its calls that
// failed as a whole (refused by the rate limit, a replica going away).
func (f *fleet) relayWork(t *testing.T) (events, failedCalls []float64) {
	t.Helper()
	for _, u := range f.st.ProductMetricsURLs() {
		m := shopload.Scrape(context.Background(), http.DefaultClient, u)
		events = append(events, m[`productsvc_relay_attempts_total{subscriber="cartsvc"}`])
		failedCalls = append(failedCalls, m[`productsvc_relay_failures_total{subscriber="cartsvc"}`])
	}
	return events, failedCalls
}

// testLog writes progress lines to the test log.
type testLog struct{ t *testing.T }

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// answers counts every request's answer by kind and code.
type answers struct {
	mu     sync.Mutex
	byOp   map[string]map[string]int
	failed []string // the first few failures
}

func (a *answers) record(op string, _ time.Time, _ time.Duration, err error) {
	code := "ok"
	if err != nil {
		code = shopload.ErrorCode(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byOp == nil {
		a.byOp = map[string]map[string]int{}
	}
	if a.byOp[op] == nil {
		a.byOp[op] = map[string]int{}
	}
	a.byOp[op][code]++
	if err != nil && len(a.failed) < 5 {
		a.failed = append(a.failed, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), op, err))
	}
}

// count returns the answers to op with any of codes.
func (a *answers) count(op string, codes ...string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range codes {
		n += a.byOp[op][c]
	}
	return n
}

// totals returns all answers and the failed ones.
func (a *answers) totals() (all, failed int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, codes := range a.byOp {
		for c, n := range codes {
			all += n
			if c != "ok" {
				failed += n
			}
		}
	}
	return all, failed
}

func (a *answers) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ops []string
	for op := range a.byOp {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&b, "  %-14s %v\n", op, a.byOp[op])
	}
	return b.String()
}

// percent is part ÷ whole in percent.
func percent(part, whole float64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * part / whole
}
