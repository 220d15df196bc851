package pgdb_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/pgtest"
)

// preparedOnOneConn runs a parameterized query twice on one connection of
// pool and counts the statements prepared on it.
func preparedOnOneConn(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	ctx := t.Context()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for range 2 {
		var n int
		if err := conn.QueryRow(ctx, "SELECT n FROM counters WHERE id = $1", 1).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	var prepared int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT n FROM counters%'").Scan(&prepared); err != nil {
		t.Fatal(err)
	}
	return prepared
}

// TestOpenPreparesStatementsByDefault: by default statements are prepared
// once per connection; the describe and exec modes (for poolers without
// prepared statements) prepare none.
func TestOpenPreparesStatementsByDefault(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewPool(t, schema)
	for mode, want := range map[pgdb.ExecMode]int{"": 1, pgdb.ExecPrepared: 1, pgdb.ExecDescribe: 0, pgdb.ExecUnprepared: 0} {
		pool, err := pgdb.Open(t.Context(), dbURL, pgdb.Options{ExecMode: mode})
		if err != nil {
			t.Fatalf("Open with exec mode %q: %v", mode, err)
		}
		if got := preparedOnOneConn(t, pool); got != want {
			t.Errorf("exec mode %q: %d prepared statements, want %d", mode, got, want)
		}
		pool.Close()
	}
	if _, err := pgdb.Open(t.Context(), dbURL, pgdb.Options{ExecMode: "simple"}); err == nil {
		t.Error("Open with an unknown exec mode succeeded")
	}
}

// TestDefaultPoolSize: four connections per CPU, between 10 and 32.
func TestDefaultPoolSize(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewPool(t, schema)
	pool, err := pgdb.Open(t.Context(), dbURL, pgdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	want := int32(min(max(4*runtime.GOMAXPROCS(0), 10), 32))
	if got := pool.Config().MaxConns; got != want || pgdb.DefaultMaxConns() != want {
		t.Errorf("default pool size %d (DefaultMaxConns %d), want %d", got, pgdb.DefaultMaxConns(), want)
	}
}

// BenchmarkExecModes runs a small join with filters, ordering and a limit
// (the shape of the services' reads) through pools in each exec mode, in
// the same loop. describe/prepared and exec/prepared are time per query
// relative to prepared statements.
func BenchmarkExecModes(b *testing.B) {
	_, dbURL := pgtest.NewPool(b, schema)
	ctx := context.Background()
	setupPool, err := pgdb.Open(ctx, dbURL, pgdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer setupPool.Close()
	if _, err := setupPool.Exec(ctx, `
		CREATE TABLE items (id int PRIMARY KEY, cart int NOT NULL, name text NOT NULL, price bigint NOT NULL, added timestamptz NOT NULL DEFAULT now());
		CREATE INDEX ON items (cart, added DESC, id);
		CREATE TABLE versions (id int PRIMARY KEY, version bigint NOT NULL, deleted bool NOT NULL DEFAULT false);
		INSERT INTO items SELECT g, g % 500, 'item ' || g, g * 7, now() - g * interval '1 second' FROM generate_series(1, 10000) g;
		INSERT INTO versions SELECT g, g FROM generate_series(1, 10000) g;
		ANALYZE items; ANALYZE versions`); err != nil {
		b.Fatal(err)
	}
	const query = `SELECT i.id, i.name, i.price, v.version
		FROM items i JOIN versions v ON v.id = i.id
		WHERE i.cart = $1 AND NOT v.deleted AND i.price >= $2
		ORDER BY i.added DESC, i.id LIMIT $3`
	pools := map[pgdb.ExecMode]*pgxpool.Pool{}
	for _, mode := range pgdb.ExecModes {
		pool, err := pgdb.Open(ctx, dbURL, pgdb.Options{ExecMode: mode, MaxConns: 1})
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		pools[mode] = pool
	}
	spent := map[pgdb.ExecMode]time.Duration{}
	n := 0
	for b.Loop() {
		for _, mode := range pgdb.ExecModes {
			t0 := time.Now()
			rows, err := pools[mode].Query(ctx, query, n%500, 0, 20)
			if err != nil {
				b.Fatal(err)
			}
			for rows.Next() {
			}
			if rows.Err() != nil {
				b.Fatal(rows.Err())
			}
			spent[mode] += time.Since(t0)
		}
		n++
	}
	b.ReportMetric(float64(spent[pgdb.ExecPrepared].Nanoseconds())/float64(n), "prepared-ns/query")
	b.ReportMetric(float64(spent[pgdb.ExecDescribe])/float64(spent[pgdb.ExecPrepared]), "describe/prepared")
	b.ReportMetric(float64(spent[pgdb.ExecUnprepared])/float64(spent[pgdb.ExecPrepared]), "exec/prepared")
}
