package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/pgdb"
)

// TestClaimsOfOtherPartitionsDoNotWait: a claim locks only the claim
// partitions it takes rows from, so a second claim made while the first's
// transaction is still open (its lane has not committed yet) claims the
// other partitions' rows at once instead of queuing behind it, and never a
// product of the first. With one claim lock per subscriber the second
// claim waited for the first to commit (here: ran into its statement
// timeout).
func TestClaimsOfOtherPartitionsDoNotWait(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.publish(t, 64) // 64 products, spread over the partitions
	first, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Rollback(ctx)
	held := b.claim(t, productdb.New(first), 4)
	if len(held) != 4 {
		t.Fatalf("the first claim took %d rows, want 4", len(held))
	}

	second, err := b.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Release()
	if _, err := second.Exec(ctx, "SET statement_timeout = '5s'"); err != nil {
		t.Fatal(err)
	}
	defer second.Exec(ctx, "RESET statement_timeout")
	began := time.Now()
	got := b.claim(t, productdb.New(second), 64)
	t.Logf("with a claim of 4 rows open, a second claim took %d of the other 60 rows in %s",
		len(got), time.Since(began).Round(time.Millisecond))
	if len(got) == 0 {
		t.Fatal("the second claim took no row while the first was open, want the rows of the partitions it does not hold")
	}
	partitions := map[int16]bool{}
	for _, r := range held {
		partitions[r.ClaimPartition] = true
	}
	for _, r := range got {
		if partitions[r.ClaimPartition] {
			t.Fatalf("the second claim took event %s of partition %d, which the open first claim holds", r.EventID, r.ClaimPartition)
		}
	}

	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rest := b.claim(t, productdb.New(second), 64)
	if n := len(held) + len(got) + len(rest); n != 64 {
		t.Fatalf("three claims took %d + %d + %d rows, want all 64 once", len(held), len(got), len(rest))
	}
}

// TestClaimWaitsWhenEveryDuePartitionIsHeld: a claim that finds every
// partition with due rows held by another open claim waits for it rather
// than coming back empty, and then takes what that claim left.
func TestClaimWaitsWhenEveryDuePartitionIsHeld(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	products := fakeProducts(1, b.clock.Now())
	for v := int64(1); v <= 3; v++ { // one product: one partition
		products[0].Version = v
		if err := pgdb.InTx(ctx, b.pool, func(tx pgx.Tx) error { return b.outbox.ProductsChanged(ctx, tx, products) }); err != nil {
			t.Fatal(err)
		}
	}
	first, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Rollback(ctx)
	if held := b.claim(t, productdb.New(first), 1); len(held) != 1 || held[0].AggregateVersion != 1 {
		t.Fatalf("the first claim took %v, want version 1", held)
	}

	done := make(chan []productdb.Outbox, 1)
	go func() { done <- b.claim(t, productdb.New(b.pool), 8) }()
	for waiting := false; !waiting; {
		select {
		case rows := <-done:
			t.Fatalf("the second claim returned %d rows while the first was open, want it to wait", len(rows))
		case <-time.After(5 * time.Millisecond):
		}
		err := b.pool.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rows := <-done
	// The first claim's lease on version 1 holds the product: nothing of
	// it may be claimed until that lease ends.
	if len(rows) != 0 {
		t.Fatalf("the second claim took %d rows of a product leased to the first, want none", len(rows))
	}
}

// claim makes one ordinary claim of up to n rows with q.
func (b *testBundle) claim(t *testing.T, q *productdb.Queries, n int) []productdb.Outbox {
	t.Helper()
	now := b.clock.Now()
	rows, err := q.ClaimDeliveries(context.Background(), productdb.ClaimDeliveriesParams{
		Subscriber: subscriber, Now: now, DueBefore: now, LeaseUntil: now.Add(time.Minute),
		ClaimID: uuid.New(), MaxRows: int32(n),
	})
	if err != nil {
		t.Errorf("claim %d rows: %v", n, err)
	}
	return rows
}
