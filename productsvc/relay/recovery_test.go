package relay_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/clientcreds"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc/relay"
)

// These tests show how fast delivery recovers from a relay that stops or
// dies and from a subscriber outage, and that parallel lanes and relays
// keep each product's events in order (docs/EVENTS.md, "Leases, hand-over
// and recovery").

// long skips a test unless SHOP_LONG=1 (CI's long mode).
func long(t *testing.T) {
	t.Helper()
	if os.Getenv("SHOP_LONG") != "1" {
		t.Skip("a long test: set SHOP_LONG=1 to run it")
	}
}

func TestStoppedRelayGivesBackUnsentEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	stopping := b.newRelay(t, relay.Config{})
	b.publish(t, 10)

	// The relay is stopped right after its claim committed, before it
	// sends anything.
	ctx, cancel := context.WithCancel(context.Background())
	stopping.AfterClaim(func(context.Context) { cancel() })
	if n, err := stopping.Round(ctx, subscriber); err != nil || n != 10 {
		t.Fatalf("Round = %d, %v; want 10 claimed", n, err)
	}
	if len(b.sink.Batches()) != 0 {
		t.Fatalf("the sink got calls %v from a relay stopped before sending", b.sink.Batches())
	}
	for id, row := range b.outboxRows(t) {
		if row.Attempts != 0 || row.LockedUntil != nil || row.LockedBy != nil || !row.NextAttemptAt.Equal(b.clock.Now()) {
			t.Fatalf("row %s = %+v; want given back: unleased, due now, no attempt counted", id, row)
		}
	}
	// Another relay takes them at once, without waiting for a lease.
	other := b.newRelay(t, relay.Config{})
	if n, err := other.Round(context.Background(), subscriber); err != nil || n != 10 {
		t.Fatalf("another relay at once: Round = %d, %v; want all 10", n, err)
	}
	if b.sink.Count() != 10 || len(b.outboxRows(t)) != 0 {
		t.Fatalf("after the hand-over: %d delivered, %d queued; want 10 and 0", b.sink.Count(), len(b.outboxRows(t)))
	}
}

func TestDeadRelaysRowsAreDueWhenTheLeaseEnds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const lease = 3 * time.Second
	b.publish(t, 10)
	// A relay claims and dies at once: no renewal, no release.
	claimedAt := b.clock.Now()
	rows, err := productdb.New(b.pool).ClaimDeliveries(context.Background(), productdb.ClaimDeliveriesParams{
		Subscriber: subscriber, Now: claimedAt, DueBefore: claimedAt, LeaseUntil: claimedAt.Add(lease),
		ClaimID: uuid.New(), MaxRows: 256,
	})
	if err != nil || len(rows) != 10 {
		t.Fatalf("claim = %d rows, %v; want 10", len(rows), err)
	}
	other := b.newRelay(t, relay.Config{Lease: lease})
	b.clock.Advance(lease - time.Millisecond)
	if n, err := other.Round(context.Background(), subscriber); err != nil || n != 0 {
		t.Fatalf("another relay before the lease ends: Round = %d, %v; want nothing claimed", n, err)
	}
	b.clock.Advance(time.Millisecond)
	if n, err := other.Round(context.Background(), subscriber); err != nil || n != 10 {
		t.Fatalf("another relay when the lease ends: Round = %d, %v; want all 10", n, err)
	}
	if b.sink.Count() != 10 || len(b.outboxRows(t)) != 0 {
		t.Fatalf("after the retry: %d delivered, %d queued; want 10 and 0", b.sink.Count(), len(b.outboxRows(t)))
	}
}

// TestHeartbeatKeepsTheLeaseOfASlowCall: a call that takes several leases
// keeps its rows, since the relay renews the lease while it waits; the
// other relay never sends them meanwhile. (The lease is a second, renewed
// every third of it, so that a loaded machine's scheduling delays, which
// reached 300 ms with other tests running, do not lose it; the call takes
// three leases.)
func TestHeartbeatKeepsTheLeaseOfASlowCall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.realTime()
	b.sink.Slow(3 * time.Second)
	cfg := relay.Config{Now: time.Now, ListenURL: b.dbURL, Lease: time.Second, CallTimeout: 10 * time.Second}
	run(t, b.newRelay(t, cfg))
	run(t, b.newRelay(t, cfg))
	b.publish(t, 20)
	b.waitDrained(t, 20*time.Second)
	if n := b.sink.Overlaps(); n != 0 {
		t.Fatalf("%d times an event was in two calls at once, want never", n)
	}
	for id, n := range b.sink.Deliveries() {
		if n != 1 {
			t.Fatalf("event %s delivered %d times, want once", id, n)
		}
	}
}

// TestRelayProcess is the relay of TestLongKilledRelayHandsOverWithinSeconds,
// run in a process of its own; it does nothing unless that test starts it.
func TestRelayProcess(t *testing.T) {
	dbURL := os.Getenv("SHOP_RELAY_PROCESS_DB")
	if dbURL == "" {
		t.Skip("run by TestLongKilledRelayHandsOverWithinSeconds")
	}
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(pool, relay.Config{
		Subscribers: []relay.Subscriber{{Name: subscriber, URL: os.Getenv("SHOP_RELAY_PROCESS_SINK")}},
		Tokens: clientcreds.New(clientcreds.Config{
			TokenURL: os.Getenv("SHOP_RELAY_PROCESS_TOKEN_URL"), ClientID: shoptest.EventsClient, ClientSecret: devissuer.DemoRelaySecret,
		}),
		ListenURL: dbURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.AfterClaim(func(context.Context) { fmt.Println("claimed") })
	_ = r.Run(context.Background()) // until killed
}

func TestLongKilledRelayHandsOverWithinSeconds(t *testing.T) {
	long(t)
	t.Parallel()
	b := setup(t)
	b.realTime()
	// The dying relay's call is in flight when it is killed.
	b.sink.Slow(5 * time.Second)

	cmd := exec.Command(os.Args[0], "-test.run=^TestRelayProcess$", "-test.v")
	cmd.Env = append(os.Environ(),
		"SHOP_RELAY_PROCESS_DB="+b.dbURL, "SHOP_RELAY_PROCESS_SINK="+b.sink.URL(),
		"SHOP_RELAY_PROCESS_TOKEN_URL="+b.iss.URL()+devissuer.TokenPath)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	claimed := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "claimed" {
				close(claimed)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	// The process's relay LISTENs: wait until it does, then publish.
	time.Sleep(time.Second)
	const n = 60
	b.publish(t, n)
	select {
	case <-claimed:
	case <-time.After(30 * time.Second):
		t.Fatal("the relay process claimed nothing in 30 s")
	}
	for len(b.sink.Batches()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	// Another relay runs, then the first dies with its events in flight.
	run(t, b.newRelay(t, relay.Config{Now: time.Now, ListenURL: b.dbURL}))
	time.Sleep(500 * time.Millisecond)
	if got := b.sink.Count(); got != 0 {
		t.Fatalf("%d events accepted before the kill, want 0 (all held by the dying relay)", got)
	}
	b.sink.Slow(0)
	killed := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	b.sink.WaitFor(n, 60*time.Second)
	took := time.Since(killed)
	t.Logf("%d events held by a SIGKILLed relay were delivered by another %s after the kill (target: 5 s)", n, took.Round(time.Millisecond))
	if !raceEnabled && took > 5*time.Second {
		t.Fatalf("the hand-over took %s, want at most 5 s", took.Round(time.Millisecond))
	}
}

func TestLongBacklogDrainsWhenTheSubscriberIsBack(t *testing.T) {
	long(t)
	t.Parallel()
	b := setup(t)
	b.realTime()
	run(t, b.newRelay(t, relay.Config{Now: time.Now, ListenURL: b.dbURL}))
	const n = 2000
	// The drain rate without an outage, measured first.
	b.publish(t, n)
	start := time.Now()
	b.sink.WaitFor(n, time.Minute)
	rate := float64(n) / time.Since(start).Seconds()
	b.waitDrained(t, 10*time.Second)

	b.sink.Stop()
	b.publish(t, n)
	const outage = 15 * time.Second
	time.Sleep(outage)
	backlog := len(b.outboxRows(t))
	b.sink.Restart()
	back := time.Now()
	b.sink.WaitFor(2*n, 2*time.Minute)
	took := time.Since(back)
	target := 2*time.Second + time.Duration(float64(backlog)/rate*float64(time.Second))
	t.Logf("after a %s outage, a backlog of %d events drained %s after the subscriber was back (target 2 s + backlog ÷ %.0f events/s = %s)",
		outage, backlog, took.Round(time.Millisecond), rate, target.Round(time.Millisecond))
	if !raceEnabled && took > target {
		t.Fatalf("the backlog drained after %s, want at most %s", took.Round(time.Millisecond), target.Round(time.Millisecond))
	}
}

// publishVersions commits version v of each product in one transaction.
func (b *testBundle) publishVersions(t testing.TB, products []productdb.Product, v int64) {
	t.Helper()
	at := time.Now()
	for i := range products {
		products[i].Version, products[i].UpdateTime = v, at
		products[i].PriceMinor = 100 + v
	}
	err := pgdb.InTx(context.Background(), b.pool, func(tx pgx.Tx) error {
		return b.outbox.ProductsChanged(context.Background(), tx, products)
	})
	if err != nil {
		t.Fatalf("publish version %d: %v", v, err)
	}
	b.notifier.Notify()
}

// TestRelaysKeepEachProductInOrder: two relays, each with its lanes, on
// a few products with many versions each (a batch holds several versions
// of a product, and without the claim's per-product exclusion two relays
// would send a product's versions in two calls at once), and on products
// in every claim partition with 8 lanes per relay (16 claims at once, in
// different partitions or queued on one).
func TestRelaysKeepEachProductInOrder(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ products, versions, lanes int }{
		{4, 60, relay.DefaultLanes},
		{64, 12, 8},
	} {
		t.Run(fmt.Sprintf("%d products, %d lanes", c.products, c.lanes), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.realTime()
			b.sink.Slow(3 * time.Millisecond)
			products := fakeProducts(c.products, time.Now())
			cfg := relay.Config{Now: time.Now, ListenURL: b.dbURL, MaxBatch: 8, Lanes: c.lanes}
			run(t, b.newRelay(t, cfg))
			run(t, b.newRelay(t, cfg))
			for v := int64(1); v <= int64(c.versions); v++ {
				b.publishVersions(t, products, v)
			}
			b.sink.WaitFor(c.products*c.versions, time.Minute)
			outOfOrder := b.outOfOrder()
			t.Logf("2 relays of %d lanes, %d products × %d versions, batches of ≤ 8: %d calls, at most %d in flight, %d events arrived after a newer version of their product",
				c.lanes, c.products, c.versions, len(b.sink.Batches()), b.sink.MaxConcurrent(), outOfOrder)
			if outOfOrder != 0 {
				t.Fatalf("%d events arrived after a newer version of their product, want none", outOfOrder)
			}
		})
	}
}

// outOfOrder counts the events the sink accepted after a newer version of
// their aggregate.
func (b *testBundle) outOfOrder() int {
	last := map[string]int64{}
	n := 0
	for _, ev := range b.sink.Events() {
		if ev.GetAggregateVersion() < last[ev.GetAggregateId()] {
			n++
		}
		last[ev.GetAggregateId()] = max(last[ev.GetAggregateId()], ev.GetAggregateVersion())
	}
	return n
}

// TestRelaysDeliverSeveralBatchesAtOnce: with many products waiting, each
// relay has several calls in flight (its lanes), still in order.
func TestRelaysDeliverSeveralBatchesAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.realTime()
	b.sink.Slow(10 * time.Millisecond)
	// 48 products in batches of 8: up to 6 claims at once.
	products := fakeProducts(48, time.Now())
	const versions = 10
	for v := int64(1); v <= versions; v++ {
		b.publishVersions(t, products, v)
	}
	start := time.Now()
	for _, name := range []string{"replica-a", "replica-b"} {
		run(t, b.newRelay(t, relay.Config{Now: time.Now, ListenURL: b.dbURL, MaxBatch: 8, Replica: name}))
	}
	b.sink.WaitFor(len(products)*versions, time.Minute)
	elapsed := time.Since(start)
	outOfOrder := b.outOfOrder()
	replicas := b.sink.Replicas()
	t.Logf("2 relays, %d products × %d versions queued, batches of ≤ 8, 10 ms per call: drained in %s, %d calls (by replica: %v), at most %d in flight, %d out of order",
		len(products), versions, elapsed.Round(time.Millisecond), len(b.sink.Batches()), replicas, b.sink.MaxConcurrent(), outOfOrder)
	if replicas["replica-a"]+replicas["replica-b"] != len(b.sink.Batches()) {
		t.Fatalf("calls by replica header = %v, want every one of the %d calls named by its relay", replicas, len(b.sink.Batches()))
	}
	if outOfOrder != 0 {
		t.Fatalf("%d events arrived after a newer version of their product, want none", outOfOrder)
	}
	if got := b.sink.MaxConcurrent(); got <= 2 {
		t.Fatalf("at most %d calls in flight from 2 relays, want more than one per relay", got)
	}
}

// TestLanesDrainASlowSubscriberFaster reports how much faster a relay with
// its default lanes drains a backlog to a subscriber whose calls take 5 ms
// than a relay with one lane, measured in the same run (a figure, never
// asserted).
func TestLanesDrainASlowSubscriberFaster(t *testing.T) {
	t.Parallel()
	drain := func(lanes int) time.Duration {
		b := setup(t)
		b.realTime()
		b.sink.Slow(5 * time.Millisecond)
		const n = 2048
		for range n / 256 {
			b.publish(t, 256)
		}
		start := time.Now()
		run(t, b.newRelay(t, relay.Config{Now: time.Now, ListenURL: b.dbURL, MaxBatch: 32, Lanes: lanes}))
		b.sink.WaitFor(n, time.Minute)
		return time.Since(start)
	}
	one, four := drain(1), drain(relay.DefaultLanes)
	t.Logf("2048 queued events, batches of 32, 5 ms per call: 1 lane %s, %d lanes %s: %.2f× as fast",
		one.Round(time.Millisecond), relay.DefaultLanes, four.Round(time.Millisecond), one.Seconds()/four.Seconds())
}
