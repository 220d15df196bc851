package relay_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/productsvc"
	"github.com/decoupledshop/shop/productsvc/relay"
)

// These tests run relays as productsvc does (Run, on the wall clock,
// woken by LISTEN/NOTIFY) and report figures; they never assert speed.

// realTime makes the bundle's outbox queue rows on the wall clock.
func (b *testBundle) realTime() {
	b.outbox = productsvc.NewOutbox([]string{subscriber}, nil, nil)
}

// TestNotificationWakesTheRelay: a relay of another process (it LISTENs,
// it does not share the writer's Notifier) wakes on the Notifier's NOTIFY.
func TestNotificationWakesTheRelay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.realTime()
	// Polling alone would take a minute: only the notification can wake
	// the relay in time.
	run(t, b.newRelay(t, relay.Config{Now: time.Now, PollInterval: time.Minute, ListenURL: b.dbURL}))
	b.logWakeLatency(t, "a debounced NOTIFY")
}

// logWakeLatency publishes events one at a time to a running relay that
// only a wake-up can bring in time, waits for each to be delivered, and
// logs the commit → delivery latencies.
func (b *testBundle) logWakeLatency(t *testing.T, via string) {
	t.Helper()
	b.publish(t, 1)
	b.sink.WaitFor(1, 10*time.Second)
	const samples = 50
	latencies := make([]time.Duration, samples)
	for i := range samples {
		b.publish(t, 1)
		committed := time.Now()
		b.sink.WaitFor(i+2, 10*time.Second)
		latencies[i] = time.Since(committed)
	}
	slices.Sort(latencies)
	t.Logf("commit → delivery via %s over %d events: median %s, p95 %s, max %s",
		via, samples, latencies[samples/2], latencies[samples*95/100], latencies[samples-1])
}

func TestLateCommitsAreNeverSkipped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.realTime()
	run(t, b.newRelay(t, relay.Config{Now: time.Now, ListenURL: b.dbURL}))
	ctx := context.Background()

	const rounds = 100
	for i := range rounds {
		// A writes its event first but commits last: B, written later, is
		// delivered while A is still invisible.
		a := fakeProducts(1, time.Now())
		txA, err := b.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.outbox.ProductsChanged(ctx, txA, a); err != nil {
			t.Fatal(err)
		}
		b.publish(t, 1)
		b.sink.WaitFor(2*i+1, 10*time.Second)
		if err := txA.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		b.notifier.Notify()
		b.sink.WaitFor(2*i+2, 10*time.Second)
	}
	b.waitDrained(t, 10*time.Second)
	for id, n := range b.sink.Deliveries() {
		if n != 1 {
			t.Fatalf("event %s delivered %d times, want once", id, n)
		}
	}
	t.Logf("%d rounds of out-of-order commits: %d events delivered, 0 missed", rounds, b.sink.Count())
}

func TestTwoRelaysNeverDeliverAnEventAtTheSameTime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.realTime()
	// Small batches and a slow receiver keep both relays busy at once.
	b.sink.Slow(2 * time.Millisecond)
	cfg := relay.Config{Now: time.Now, ListenURL: b.dbURL, MaxBatch: 16}
	run(t, b.newRelay(t, cfg))
	run(t, b.newRelay(t, cfg))

	const txs, perTx = 40, 50
	start := time.Now()
	for range txs {
		b.publish(t, perTx)
	}
	b.sink.WaitFor(txs*perTx, time.Minute)
	elapsed := time.Since(start)

	if n := b.sink.Overlaps(); n != 0 {
		t.Fatalf("%d times an event was in two calls at once, want never", n)
	}
	twice := 0
	for _, n := range b.sink.Deliveries() {
		if n > 1 {
			twice++
		}
	}
	if twice != 0 {
		t.Fatalf("%d events were delivered more than once without any failure, want none", twice)
	}
	t.Logf("2 relays, batches of ≤ 16, 2 ms per call: %d events in %s (%.0f events/s), %d calls",
		txs*perTx, elapsed.Round(time.Millisecond), float64(txs*perTx)/elapsed.Seconds(), len(b.sink.Batches()))
}

func TestThroughput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.realTime()
	n := 20000
	if testing.Short() {
		n = 2000
	}
	// Queue everything first, then measure the relay draining it.
	products := fakeProducts(n, time.Now())
	for chunk := range slices.Chunk(products, 1000) {
		if err := pgdb.InTx(context.Background(), b.pool, func(tx pgx.Tx) error {
			return b.outbox.ProductsChanged(context.Background(), tx, chunk)
		}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	run(t, b.newRelay(t, relay.Config{Now: time.Now, ListenURL: b.dbURL}))
	b.sink.WaitFor(n, 2*time.Minute)
	elapsed := time.Since(start)
	t.Logf("one relay drained %d queued events in %s: %.0f events/s, %d calls",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), len(b.sink.Batches()))
}
