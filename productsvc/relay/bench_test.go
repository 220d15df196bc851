package relay_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/productsvc/relay"
)

// BenchmarkDrain measures how fast one relay drains a backlog of 50k
// queued events (claimed, delivered to a sink over real HTTP, deleted)
// against raw single-row INSERTs by 8 workers on the same database, in the
// same iteration. drain/insert is the ratio of their rates (the issue's
// "a 50k-event outbox backlog drained per s ÷ raw INSERT"; the target is
// ≥ 1: batching must beat single-row writes).
//
//	go test -run '^$' -bench '^BenchmarkDrain$' -benchtime 2x ./productsvc/relay
func BenchmarkDrain(b *testing.B) {
	bundle := setup(b)
	bundle.realTime()
	ctx := context.Background()
	if _, err := bundle.pool.Exec(ctx,
		`CREATE TABLE bench_insert (id uuid PRIMARY KEY, n bigint NOT NULL, note text NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	const backlog = 50000
	var drain, insert time.Duration
	delivered := 0
	for b.Loop() {
		b.StopTimer()
		for chunk := range slices.Chunk(fakeProducts(backlog, time.Now()), 1000) {
			if err := pgdb.InTx(ctx, bundle.pool, func(tx pgx.Tx) error {
				return bundle.outbox.ProductsChanged(ctx, tx, chunk)
			}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		rctx, cancel := context.WithCancel(ctx)
		r := bundle.newRelay(b, relay.Config{Now: time.Now})
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = r.Run(rctx)
		}()
		delivered += backlog
		bundle.sink.WaitFor(delivered, 5*time.Minute)
		bundle.waitDrained(b, time.Minute)
		drain += time.Since(start)
		cancel()
		<-done

		insert += rawInserts(b, bundle, backlog/10)
	}
	// insert measured a tenth of the rows: scale it to the backlog.
	b.ReportMetric(float64(b.N*backlog)/drain.Seconds(), "events/s")
	b.ReportMetric(float64(insert*10)/float64(drain), "drain/insert")
}

// rawInserts makes n single-row INSERTs (each its own transaction) by 8
// workers and returns the time they took.
func rawInserts(b *testing.B, bundle *testBundle, n int) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := bundle.pool.Exec(context.Background(), `INSERT INTO bench_insert (id, n, note) VALUES ($1, $2, $3)`,
					uuid.New(), 1, "a row about as wide as a product's"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}
