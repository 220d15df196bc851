package pgdb_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/pgtest"
)

// tripLog is a pgx tracer counting round trips: a batch or a single query.
type tripLog struct {
	mu    sync.Mutex
	trips [][]string
}

func (l *tripLog) add(trip ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trips = append(l.trips, trip)
}

func (l *tripLog) take() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.trips
	l.trips = nil
	return t
}

func (l *tripLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	l.add(d.SQL)
	return ctx
}
func (l *tripLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (l *tripLog) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	var trip []string
	for _, q := range d.Batch.QueuedQueries {
		trip = append(trip, q.SQL)
	}
	l.add(trip...)
	return ctx
}
func (l *tripLog) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (l *tripLog) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// tracedPool is a one-connection pool on a fresh schema whose round trips
// log records, and a plain pool on the same database to look with.
func tracedPool(t *testing.T) (*pgxpool.Pool, *tripLog, *pgxpool.Pool) {
	t.Helper()
	direct, url := pgtest.NewPool(t, schema)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	log := &tripLog{}
	cfg.ConnConfig.Tracer = log
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, log, direct
}

func counters(t *testing.T, pool *pgxpool.Pool) (n1, n2 int) {
	t.Helper()
	if err := pool.QueryRow(t.Context(), "SELECT (SELECT n FROM counters WHERE id = 1), (SELECT n FROM counters WHERE id = 2)").Scan(&n1, &n2); err != nil {
		t.Fatal(err)
	}
	return n1, n2
}

// TestPipelinedSendsExecsWithTheNextRead: two Execs, a read, an Exec and
// COMMIT take two round trips ([BEGIN, Exec, Exec, read] and [Exec,
// COMMIT]); the read sees the Execs before it, and everything commits.
func TestPipelinedSendsExecsWithTheNextRead(t *testing.T) {
	t.Parallel()
	pool, log, direct := tracedPool(t)
	ctx := t.Context()
	log.take()
	var seen int
	err := pgdb.InTx(ctx, pgdb.Pipelined{Pool: pool}, func(tx pgx.Tx) error {
		for range 2 {
			if _, err := tx.Exec(ctx, "UPDATE counters SET n = n + 1 WHERE id = 1"); err != nil {
				return err
			}
		}
		if err := tx.QueryRow(ctx, "SELECT n FROM counters WHERE id = 1").Scan(&seen); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE counters SET n = $1 WHERE id = 2", seen*10)
		return err
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	trips := log.take()
	if len(trips) != 2 || len(trips[0]) != 4 || trips[0][0] != "begin" || len(trips[1]) != 2 || trips[1][1] != "commit" {
		t.Errorf("round trips %q, want [begin, update, update, select] and [update, commit]", trips)
	}
	if n1, n2 := counters(t, direct); seen != 2 || n1 != 2 || n2 != 20 {
		t.Fatalf("read %d inside, counters %d, %d after; want 2 and 2, 20", seen, n1, n2)
	}
}

// TestPipelinedExecsAloneAreOneImplicitTransaction: a transaction that
// reads nothing is one round trip without BEGIN or COMMIT, and still all
// or nothing: a failing statement undoes the ones before it.
func TestPipelinedExecsAloneAreOneImplicitTransaction(t *testing.T) {
	t.Parallel()
	pool, log, direct := tracedPool(t)
	ctx := t.Context()
	log.take()
	err := pgdb.InTx(ctx, pgdb.Pipelined{Pool: pool}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE counters SET n = 5 WHERE id = 1"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO counters VALUES (2, 0)") // duplicate key
		return err
	})
	if !pgdb.IsUniqueViolation(err, "counters_pkey") {
		t.Fatalf("InTx = %v, want the INSERT's unique violation", err)
	}
	if trips := log.take(); len(trips) != 1 || len(trips[0]) != 2 {
		t.Errorf("round trips %q, want one with the two statements", trips)
	}
	if n1, _ := counters(t, direct); n1 != 0 {
		t.Fatalf("counter 1 = %d after the failed transaction, want 0 (rolled back with the INSERT)", n1)
	}
	if err := pgdb.InTx(ctx, pgdb.Pipelined{Pool: pool}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE counters SET n = 5 WHERE id = 1")
		return err
	}); err != nil {
		t.Fatalf("InTx on the pool's only connection after a failure: %v", err)
	}
	if n1, _ := counters(t, direct); n1 != 5 {
		t.Fatalf("counter 1 = %d, want 5", n1)
	}
}

// TestPipelinedFailuresRollBack: a queued statement's error comes back
// from the next read, named; an error of the callback after statements
// were sent rolls them back; either way the connection is clean for the
// next transaction.
func TestPipelinedFailuresRollBack(t *testing.T) {
	t.Parallel()
	pool, _, direct := tracedPool(t)
	ctx := t.Context()
	err := pgdb.InTx(ctx, pgdb.Pipelined{Pool: pool}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE counters SET n = 99"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "-- name: Divide :exec\nSELECT 1 / 0"); err != nil {
			return err
		}
		var n int
		return tx.QueryRow(ctx, "SELECT n FROM counters WHERE id = 1").Scan(&n)
	})
	if err == nil || !strings.Contains(err.Error(), "Divide: ") || !strings.Contains(err.Error(), "division by zero") {
		t.Fatalf("InTx = %v, want the queued statement's error, named", err)
	}
	boom := errors.New("boom")
	err = pgdb.InTx(ctx, pgdb.Pipelined{Pool: pool}, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, "UPDATE counters SET n = 99 WHERE id = 1 RETURNING n").Scan(&n); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want the callback's error", err)
	}
	if n1, n2 := counters(t, direct); n1 != 0 || n2 != 0 {
		t.Fatalf("counters = %d, %d after failed transactions, want 0, 0", n1, n2)
	}
	var none int
	err = pgdb.InTx(ctx, pgdb.Pipelined{Pool: pool}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT n FROM counters WHERE id = 3").Scan(&none)
	})
	if !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("QueryRow of no row = %v, want pgx.ErrNoRows on the pool's only connection", err)
	}
}

// TestPipelinedRetriesDeadlocks: InTx retries a pipelined transaction
// chosen as a deadlock victim, as it does a plain one.
func TestPipelinedRetriesDeadlocks(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t, schema)
	ctx := t.Context()
	bothLockedFirst := make(chan struct{}, 2)
	proceed := make(chan struct{})
	var once [2]sync.Once
	run := func(w, first, second int) error {
		return pgdb.InTx(ctx, pgdb.Pipelined{Pool: pool}, func(tx pgx.Tx) error {
			var n int
			if err := tx.QueryRow(ctx, "UPDATE counters SET n = n + 1 WHERE id = $1 RETURNING n", first).Scan(&n); err != nil {
				return err
			}
			once[w].Do(func() { // first attempt: wait until both hold their first lock
				bothLockedFirst <- struct{}{}
				<-proceed
			})
			return tx.QueryRow(ctx, "UPDATE counters SET n = n + 1 WHERE id = $1 RETURNING n", second).Scan(&n)
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- run(0, 1, 2) }()
	go func() { errs <- run(1, 2, 1) }()
	<-bothLockedFirst
	<-bothLockedFirst
	close(proceed)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("InTx: %v", err)
		}
	}
	if n1, n2 := counters(t, pool); n1 != 2 || n2 != 2 {
		t.Fatalf("counters = %d, %d; want 2, 2 (each transaction applied once)", n1, n2)
	}
}

// TestPipelinedCommitWithoutAnswerIsOutcomeUnknown: the connection cut
// while the batch carrying COMMIT runs gives ErrCommitOutcomeUnknown, as
// for a plain transaction (see TestCommitWithoutAnswerIsOutcomeUnknown).
func TestPipelinedCommitWithoutAnswerIsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	pool, _ := cutDuringCommit(t)
	ctx := t.Context()
	err := pgdb.InTx(ctx, pgdb.Pipelined{Pool: pool}, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil { // BEGIN goes with it
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO slow_commits VALUES (1)")
		return err
	})
	if !errors.Is(err, pgdb.ErrCommitOutcomeUnknown) {
		t.Fatalf("InTx with the connection cut during COMMIT: %v, want ErrCommitOutcomeUnknown", err)
	}
	wantUnavailable(t, "pipelined commit without answer", err, msgUnknown)
}

// BenchmarkPipelined measures a write shaped like UpdateProduct (an UPDATE
// … RETURNING, then an INSERT of what it returned) in pipelined
// transactions and in plain ones, alternating blocks of 100 within every
// iteration, each kind on a connection of its own (unix socket, durability
// off, so round trips are what differs). It reports the ratios
// pipelined/plain of wall time, of this process's CPU time and of the
// PostgreSQL backend's CPU time (/proc/<pid>/stat, 10 ms ticks: use
// enough iterations).
//
//	go test -run '^$' -bench '^BenchmarkPipelined$' -benchtime 20x ./internal/pgdb
func BenchmarkPipelined(b *testing.B) {
	setup, url := pgtest.NewPool(b, schema)
	ctx := b.Context()
	if _, err := setup.Exec(ctx, "CREATE TABLE events (n int NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	write := func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, "UPDATE counters SET n = n + 1 WHERE id = 1 RETURNING n").Scan(&n); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO events (n) VALUES ($1)", n)
		return err
	}
	type side struct {
		db                  pgdb.Beginner
		backend             int
		wall, self, backCPU time.Duration
	}
	backend := func(pool *pgxpool.Pool) int {
		var pid int
		if err := pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			b.Fatal(err)
		}
		return pid
	}
	pipePool, plainPool := onePool(b, url), onePool(b, url)
	sides := []*side{{db: pgdb.Pipelined{Pool: pipePool}, backend: backend(pipePool)}, {db: plainPool, backend: backend(plainPool)}}
	for b.Loop() {
		for _, s := range sides {
			t0, c0, p0 := time.Now(), selfCPU(b), procCPU(b, s.backend)
			for range 100 {
				if err := pgdb.InTx(ctx, s.db, write); err != nil {
					b.Fatal(err)
				}
			}
			s.wall += time.Since(t0)
			s.self += selfCPU(b) - c0
			s.backCPU += procCPU(b, s.backend) - p0
		}
	}
	pipe, plain := sides[0], sides[1]
	b.ReportMetric(float64(pipe.wall.Nanoseconds())/float64(b.N*100), "pipelined-ns/tx")
	b.ReportMetric(float64(pipe.wall)/float64(plain.wall), "pipelined/plain")
	b.ReportMetric(float64(pipe.self)/float64(plain.self), "go-cpu-pipelined/plain")
	b.ReportMetric(float64(pipe.backCPU)/float64(plain.backCPU), "pg-cpu-pipelined/plain")
}

// onePool is a pool of one connection to url.
func onePool(b *testing.B, url string) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns, cfg.MinConns = 1, 1
	pool, err := pgxpool.NewWithConfig(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

// selfCPU is this process's CPU time (user and system) so far.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is process pid's CPU time (user and system) so far, from
// /proc/<pid>/stat in clock ticks of 10 ms.
func procCPU(b *testing.B, pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(stat), ") ") // after the command name
	f := strings.Fields(rest)
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
