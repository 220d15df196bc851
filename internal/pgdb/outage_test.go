package pgdb_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decoupledshop/shop/internal/pgcluster"
	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/server"
)

// increment is a transaction every outage test runs.
func increment(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "UPDATE counters SET n = n + 1 WHERE id = 1")
	return err
}

// wantUnavailable fails the test unless err is what a client should see as
// Unavailable with the given message.
func wantUnavailable(t *testing.T, what string, err error, message string) {
	t.Helper()
	if !pgdb.IsUnavailable(err) {
		t.Errorf("%s: IsUnavailable(%v) = false, want true", what, err)
	}
	ce, _ := errors.AsType[*connect.Error](server.ConnectError(err))
	if ce == nil || ce.Code() != connect.CodeUnavailable || ce.Message() != message {
		t.Errorf("%s: client sees %v, want unavailable %q (error: %v)", what, ce, message, err)
	}
}

const (
	msgRetry   = "database temporarily unavailable; retry later"
	msgUnknown = "the database did not confirm the write, which may or may not have been applied; retry with the same request_id"
)

// TestStoppedDatabaseIsUnavailableAndRecovers stops a real cluster the way
// `pg_ctl stop -m immediate` does: transactions and plain queries answer
// Unavailable (never internal) while it is down, and the same pool works
// again once it is back.
func TestStoppedDatabaseIsUnavailableAndRecovers(t *testing.T) {
	t.Parallel()
	binDir, err := pgcluster.FindBinDir(os.Getenv("PG_BIN"), pgcluster.DebianBinGlob, os.Getenv("PATH"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("/tmp", "pgdb-outage-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx := t.Context()
	start := func() *pgcluster.Cluster {
		c, err := pgcluster.Start(ctx, pgcluster.Options{BinDir: binDir, Dir: dir, Throwaway: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cluster := start()
	pool, err := pgdb.Open(ctx, cluster.SuperuserURL(), pgdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL); INSERT INTO counters VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	// The throwaway cluster commits asynchronously: make the table survive the crash.
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	if err := pgdb.InTx(ctx, pool, func(tx pgx.Tx) error { return increment(ctx, tx) }); err != nil {
		t.Fatalf("InTx before the outage: %v", err)
	}

	cluster.Stop() // immediate shutdown: SIGQUIT, as pg_ctl stop -m immediate
	wantUnavailable(t, "InTx while down", pgdb.InTx(ctx, pool, func(tx pgx.Tx) error { return increment(ctx, tx) }), msgRetry)
	_, err = pool.Exec(ctx, "SELECT 1")
	wantUnavailable(t, "query while down", err, msgRetry)

	cluster = start()
	defer cluster.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := pgdb.InTx(ctx, pool, func(tx pgx.Tx) error { return increment(ctx, tx) })
		if err == nil {
			break
		}
		wantUnavailable(t, "InTx while restarting", err, msgRetry)
		if time.Now().After(deadline) {
			t.Fatalf("InTx still failing 10s after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStarvedPoolAnswersUnavailableBeforeTheDeadline holds the only
// connection of a pool: InTx gives up waiting for it after half the
// request's remaining time (at most AcquireTimeout) with ErrPoolExhausted,
// Unavailable to clients, rather than hanging to the request's deadline.
func TestStarvedPoolAnswersUnavailableBeforeTheDeadline(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewPool(t, schema)
	pool, err := pgdb.Open(t.Context(), dbURL, pgdb.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	held, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()

	for _, requestDeadline := range []time.Duration{2 * time.Second, time.Minute} {
		ctx, cancel := context.WithTimeout(t.Context(), requestDeadline)
		began := time.Now()
		err = pgdb.InTx(ctx, pool, func(tx pgx.Tx) error { return increment(ctx, tx) })
		waited := time.Since(began)
		cancel()
		if !errors.Is(err, pgdb.ErrPoolExhausted) {
			t.Fatalf("deadline %v: InTx on a starved pool: %v, want ErrPoolExhausted", requestDeadline, err)
		}
		wantUnavailable(t, "starved pool", err, msgRetry)
		if limit := min(requestDeadline/2, pgdb.AcquireTimeout) + time.Second; waited > limit {
			t.Errorf("deadline %v: waited %v for a connection, want about %v", requestDeadline, waited, limit-time.Second)
		}
	}
}

// TestStarvedPoolFailsPlainQueriesBeforeTheDeadline: a query outside InTx
// on a starved pool from Open gives up waiting for a connection after half
// the request's remaining time with context.DeadlineExceeded while the
// request's own context is still live (the server answers that as
// Unavailable), instead of hanging to the request's deadline.
func TestStarvedPoolFailsPlainQueriesBeforeTheDeadline(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewPool(t, schema)
	pool, err := pgdb.Open(t.Context(), dbURL, pgdb.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	held, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	_, err = pool.Exec(ctx, "SELECT 1")
	if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Fatalf("query on a starved pool: %v (request context: %v), want DeadlineExceeded with the request still live", err, ctx.Err())
	}
}

// TestCommitWithoutAnswerIsOutcomeUnknown cuts the connection while
// PostgreSQL is committing (a deferred trigger makes the commit take a
// while): InTx reports ErrCommitOutcomeUnknown, which clients see as
// Unavailable telling them to retry with the same request_id, and indeed
// the write was applied.
func TestCommitWithoutAnswerIsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	pool, direct := cutDuringCommit(t)
	ctx := t.Context()
	err := pgdb.InTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO slow_commits VALUES (1)")
		return err
	})
	if !errors.Is(err, pgdb.ErrCommitOutcomeUnknown) {
		t.Fatalf("InTx with the connection cut during COMMIT: %v, want ErrCommitOutcomeUnknown", err)
	}
	wantUnavailable(t, "commit without answer", err, msgUnknown)

	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := direct.QueryRow(ctx, "SELECT count(*) FROM slow_commits").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break // committed after all: only a retry with the same request_id is safe
		}
		if time.Now().After(deadline) {
			t.Fatal("the cut commit was never applied; the test no longer shows an unknown outcome")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cutDuringCommit prepares a fresh database so that a transaction that
// inserted into slow_commits sleeps 1 s in its COMMIT (a deferred
// trigger), and returns a pool that reaches it through a proxy, cut once
// such a COMMIT is asleep (the only session of that database that sleeps),
// and a pool that reaches it directly.
func cutDuringCommit(t *testing.T) (pool, direct *pgxpool.Pool) {
	t.Helper()
	direct, dbURL := pgtest.NewPool(t, schema)
	ctx := t.Context()
	if _, err := direct.Exec(ctx, `
		CREATE TABLE slow_commits (id int PRIMARY KEY);
		CREATE FUNCTION sleep_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
		CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON slow_commits DEFERRABLE INITIALLY DEFERRED
			FOR EACH ROW EXECUTE FUNCTION sleep_at_commit()`); err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, dbURL)
	pool, err := pgdb.Open(ctx, proxy.url, pgdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	go func() {
		for ctx.Err() == nil {
			var committing bool
			err := direct.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep')`).Scan(&committing)
			if err == nil && committing {
				proxy.cut()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return pool, direct
}

// proxy forwards a unix socket to a PostgreSQL server's until it is cut,
// like a network partition.
type proxy struct {
	url   string
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

// startProxy listens on a fresh socket directory and forwards to the server
// of dbURL; url is dbURL through the proxy.
func startProxy(t *testing.T, dbURL string) *proxy {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(cfg.Host, ".s.PGSQL."+strconv.Itoa(int(cfg.Port)))
	dir, err := os.MkdirTemp("/tmp", "pgdb-proxy-")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, ".s.PGSQL.5432"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &proxy{ln: ln, url: "postgres://" + cfg.User + "@/" + cfg.Database + "?host=" + dir + "&port=5432&sslmode=disable"}
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("unix", target)
			if err != nil {
				client.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, client, server)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(server, client); server.Close() }()
			go func() { _, _ = io.Copy(client, server); client.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

// cut closes every proxied connection without a word to either side and
// refuses new ones (so pgx's cancel request on a broken connection does not
// arrive either).
func (p *proxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
