package pgdb_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var schema = pgtest.Schema{
	Name: "pgdb",
	Role: "pgdbtest",
	Migrate: func(ctx context.Context, url string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL); INSERT INTO counters VALUES (1, 0), (2, 0)`)
		return err
	},
}

// TestInTxRetriesDeadlocks makes two transactions lock two rows in opposite
// order: PostgreSQL aborts one with a deadlock, InTx retries it, and both
// increments land exactly once.
func TestInTxRetriesDeadlocks(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t, schema)
	ctx := context.Background()
	var attempts atomic.Int32
	bothLockedFirst := make(chan struct{}, 2)
	proceed := make(chan struct{})
	run := func(first, second int) error {
		return pgdb.InTx(ctx, pool, func(tx pgx.Tx) error {
			n := attempts.Add(1)
			if _, err := tx.Exec(ctx, "UPDATE counters SET n = n + 1 WHERE id = $1", first); err != nil {
				return err
			}
			if n <= 2 { // first attempts: wait until both hold their first lock
				bothLockedFirst <- struct{}{}
				<-proceed
			}
			_, err := tx.Exec(ctx, "UPDATE counters SET n = n + 1 WHERE id = $1", second)
			return err
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- run(1, 2) }()
	go func() { errs <- run(2, 1) }()
	<-bothLockedFirst
	<-bothLockedFirst
	close(proceed)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("InTx: %v", err)
		}
	}
	var n1, n2 int
	if err := pool.QueryRow(ctx, "SELECT (SELECT n FROM counters WHERE id = 1), (SELECT n FROM counters WHERE id = 2)").Scan(&n1, &n2); err != nil {
		t.Fatal(err)
	}
	if n1 != 2 || n2 != 2 {
		t.Fatalf("counters = %d, %d; want 2, 2 (each transaction applied once)", n1, n2)
	}
	// At least the deadlock victim ran twice; under heavy load the retry
	// itself may be chosen as a victim again, which InTx also absorbs.
	if a := attempts.Load(); a < 3 {
		t.Fatalf("attempts = %d, want at least 3 (the deadlock victim retried)", a)
	}
}

func TestInTxRollsBackOnError(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t, schema)
	ctx := context.Background()
	boom := errors.New("boom")
	err := pgdb.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE counters SET n = 99"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want the callback's error", err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT max(n) FROM counters").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("counter = %d after a failed transaction, want 0", n)
	}
}

func TestIsUniqueViolation(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t, schema)
	_, err := pool.Exec(context.Background(), "INSERT INTO counters VALUES (1, 0)")
	if !pgdb.IsUniqueViolation(err, "counters_pkey") || !pgdb.IsUniqueViolation(err, "") {
		t.Fatalf("duplicate key %v not recognised", err)
	}
	if pgdb.IsUniqueViolation(err, "other_key") || pgdb.IsUniqueViolation(errors.New("x"), "") {
		t.Fatal("IsUniqueViolation matched the wrong error")
	}
}

// TestCheckSaysWhatIsUnreachableInOneLine: an unreachable server and a
// missing role each give one line naming what failed, never the password.
func TestCheckSaysWhatIsUnreachableInOneLine(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewPool(t, schema)
	ctx := context.Background()
	if err := pgdb.Check(ctx, dbURL); err != nil {
		t.Fatalf("Check on a live database: %v", err)
	}
	for name, c := range map[string]struct{ url, want string }{
		"closed port":  {"postgres://app:hunter2@127.0.0.1:1/shop", "connection refused"},
		"unknown role": {withUser(t, dbURL, "nosuchrole", "hunter2"), "nosuchrole"},
		"not a url":    {"hunter2 is not a url", "invalid connection string"},
	} {
		err := pgdb.Check(ctx, c.url)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: %v; want one line with %q and no password", name, err, c.want)
		}
	}
}

func withUser(t *testing.T, dbURL, user, password string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}
