package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
)

// TestClaimStaysFastWithStatisticsOfAnEmptyOutbox: autovacuum analyzes the
// outbox, a queue, at whatever size it has, often nearly empty. A claim
// planned with such statistics must not scan the backlog once per row: the
// connection plans the claim while the outbox is empty (and analyzed so);
// then the claim of one batch from a 3,000-row backlog is timed with that
// plan, and again after a fresh ANALYZE (which replans), on the same
// connection, in the same run. Before the fix the first took seconds (the
// subquery ran again for every outbox row) and the second milliseconds.
func TestClaimStaysFastWithStatisticsOfAnEmptyOutbox(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "ANALYZE outbox"); err != nil { // empty
		t.Fatal(err)
	}
	q := productdb.New(conn)
	claim := func(want int) time.Duration {
		began := time.Now()
		rows, err := q.ClaimDeliveries(ctx, productdb.ClaimDeliveriesParams{
			Subscriber: subscriber, Now: b.clock.Now(), DueBefore: b.clock.Now().Add(time.Hour),
			LeaseUntil: b.clock.Now().Add(time.Minute), ClaimID: uuid.New(), MaxRows: 64,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != want {
			t.Fatalf("claimed %d rows, want %d", len(rows), want)
		}
		return time.Since(began)
	}
	for range 8 { // PostgreSQL keeps a generic plan after five runs
		claim(0)
	}
	b.publish(t, 3000)
	stale := claim(64)
	if _, err := conn.Exec(ctx, "ANALYZE outbox"); err != nil {
		t.Fatal(err)
	}
	fresh := claim(64)
	ratio := float64(stale) / float64(max(fresh, time.Microsecond))
	t.Logf("claim of 64 from 3,000 rows: %v with an empty outbox's statistics, %v after ANALYZE (ratio %.1f)", stale, fresh, ratio)
	if !raceEnabled && ratio > 20 {
		t.Errorf("a claim planned with an empty outbox's statistics took %.0f× as long as after ANALYZE; want at most 20×", ratio)
	}
}
