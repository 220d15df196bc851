package cartsvc

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
	"github.com/decoupledshop/shop/internal/pgtest"
)

// countingPool is a pool on a fresh cart database whose statements are
// counted.
func countingPool(t *testing.T) (*pgxpool.Pool, *atomic.Int64) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t, pgtest.CartSchema))
	if err != nil {
		t.Fatal(err)
	}
	n := &statements{}
	cfg.ConnConfig.Tracer = n
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, &n.n
}

type statements struct{ n atomic.Int64 }

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	s.n.Add(1)
	return ctx
}

func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// touch rewrites user's cart row (creating it) as a cart write does and
// returns its new revision.
func touch(t *testing.T, pool *pgxpool.Pool, user string) int64 {
	var rev int64
	err := pool.QueryRow(context.Background(), `
		INSERT INTO carts (user_id, create_time, update_time) VALUES ($1, now(), now())
		ON CONFLICT (user_id) DO UPDATE SET update_time = clock_timestamp()
		RETURNING xmin::text::bigint`, user).Scan(&rev)
	if err != nil {
		t.Error(err)
	}
	return rev
}

// TestRevisionProberSharesProbes: concurrent requests get each their own
// user's revision (0 without a cart), from fewer queries than requests.
func TestRevisionProberSharesProbes(t *testing.T) {
	t.Parallel()
	pool, counted := countingPool(t)
	want := map[string]int64{"nobody": 0}
	for i := range 100 {
		u := fmt.Sprintf("user%03d", i)
		want[u] = touch(t, pool, u)
	}
	p := &revisionProber{q: cartdb.New(pool)}
	before := counted.Load()
	var calls atomic.Int64
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := range 20 {
				u := fmt.Sprintf("user%03d", (g*7+i*13)%100)
				if i%5 == 0 {
					u = "nobody"
				}
				got, err := p.revision(context.Background(), u)
				calls.Add(1)
				if err != nil || got != want[u] {
					t.Errorf("revision(%s) = %d, %v; want %d", u, got, err, want[u])
				}
			}
		})
	}
	wg.Wait()
	queries := counted.Load() - before
	t.Logf("%d requests, %d queries", calls.Load(), queries)
	if queries >= calls.Load() {
		t.Fatalf("%d queries for %d requests; want them shared", queries, calls.Load())
	}
}

// TestRevisionProberSeesEarlierWrites: a request sees every write
// committed before it arrived, even when it joins a batch while another
// probe is in flight.
func TestRevisionProberSeesEarlierWrites(t *testing.T) {
	t.Parallel()
	pool, _ := countingPool(t)
	p := &revisionProber{q: cartdb.New(pool)}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			u := fmt.Sprintf("writer%d", g)
			for i := range 40 {
				rev := touch(t, pool, u)
				if got, err := p.revision(context.Background(), u); err != nil || got != rev {
					t.Errorf("%s write %d: revision %d, %v; want %d", u, i, got, err, rev)
					return
				}
			}
		})
	}
	wg.Wait()
}
