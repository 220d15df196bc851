package cartsvc_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// rawInserts is the baseline of the write benchmarks: raw single-row
// INSERTs with pgx on the cart's database, the cheapest durable write
// there is (one statement, one commit each).
type rawInserts struct {
	pool *pgxpool.Pool
	next atomic.Int64
}

// newRawInserts creates the baseline's table on pool.
func newRawInserts(b *testing.B, pool *pgxpool.Pool) *rawInserts {
	b.Helper()
	if _, err := pool.Exec(context.Background(),
		"CREATE TABLE IF NOT EXISTS bench_raw (id bigint PRIMARY KEY, payload text NOT NULL, create_time timestamptz NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	return &rawInserts{pool: pool}
}

// run inserts n rows with 8 workers and returns how long it took.
func (r *rawInserts) run(b *testing.B, n int) time.Duration {
	return r.runWith(b, n, 8)
}

// runWith inserts n rows with workers workers and returns how long it
// took.
func (r *rawInserts) runWith(b *testing.B, n, workers int) time.Duration {
	b.Helper()
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(int64(n))
	t0 := time.Now()
	for range workers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				id := r.next.Add(1)
				if _, err := r.pool.Exec(context.Background(), "INSERT INTO bench_raw (id, payload, create_time) VALUES ($1, $2, now())", id, "row"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(t0)
}
