package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decoupledshop/shop/productsvc/relay"
)

// listen returns a connection LISTENing on relay.Channel, closed when the
// test ends.
func (b *testBundle) listen(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), b.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(context.Background(), "LISTEN "+relay.Channel); err != nil {
		t.Fatal(err)
	}
	return conn
}

// notifications counts the notifications conn receives within d.
func notifications(conn *pgx.Conn, d time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	n := 0
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return n
		}
		n++
	}
}

// TestQueuingEventsSendsNoNotify: a transaction that queues events sends no
// NOTIFY (NOTIFY takes a cluster-wide lock at commit); only the Notifier,
// after the commit, does.
func TestQueuingEventsSendsNoNotify(t *testing.T) {
	t.Parallel()
	b := setup(t)
	conn := b.listen(t)
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.outbox.ProductsChanged(ctx, tx, fakeProducts(3, b.clock.Now())); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := notifications(conn, 300*time.Millisecond); n != 0 {
		t.Fatalf("committing queued events sent %d notifications, want none", n)
	}
	b.notifier.Notify()
	if n := notifications(conn, 2*time.Second); n != 1 {
		t.Fatalf("Notify sent %d notifications, want 1", n)
	}
}

// TestNotifierDebouncesNotify: a burst of Notify calls sends at most one
// NOTIFY per interval, the first at once and the last after the burst.
func TestNotifierDebouncesNotify(t *testing.T) {
	t.Parallel()
	b := setup(t)
	conn := b.listen(t)
	const interval = 100 * time.Millisecond
	n := relay.NewNotifier(b.pool, interval, nil)
	start := time.Now()
	for time.Since(start) < 500*time.Millisecond {
		n.Notify()
		time.Sleep(time.Millisecond)
	}
	burst := time.Since(start)
	got := notifications(conn, time.Second)
	// One at the start, then at most one per interval after it.
	if limit := 2 + int(burst/interval); got < 2 || got > limit {
		t.Fatalf("%s of Notify calls sent %d notifications, want 2 to %d", burst.Round(time.Millisecond), got, limit)
	}
	t.Logf("%s of Notify calls every millisecond: %d notifications", burst.Round(time.Millisecond), got)
}

// TestNotifierWakesItsRelayInProcess: a relay sharing the writer's
// Notifier is woken without any NOTIFY (no LISTEN, a one-minute poll).
func TestNotifierWakesItsRelayInProcess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.realTime()
	run(t, b.newRelay(t, relay.Config{Now: time.Now, PollInterval: time.Minute, Notifier: b.notifier}))
	b.logWakeLatency(t, "the in-process wake")
}
