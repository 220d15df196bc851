// Package pgdb opens PostgreSQL pools the way both services need them and
// runs transactions with rollback-on-error and bounded retries.
package pgdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Open returns a connection pool for databaseURL and checks that the server
// answers.
//
// Statements are sent unnamed with cached descriptions
// (QueryExecModeCacheDescribe), so the pool works behind a transaction-mode
// pooler (no session-level prepared statements) and every query is planned
// with its actual parameters, which keeps optional filters index-friendly.
// maxConns bounds the pool; 0 keeps pgx's default (max(4, NumCPU)).
func Open(ctx context.Context, databaseURL string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", redact(err))
	}
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.MaxConnIdleTime = 5 * time.Minute
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, connectError(cfg.ConnConfig, err)
	}
	return pool, nil
}

// Check connects to databaseURL once and closes the connection: nil if the
// database answers, else a one-line error naming the server, database and
// user and the root cause (never the password).
func Check(ctx context.Context, databaseURL string) error {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", redact(err))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return connectError(cfg, err)
	}
	return conn.Close(ctx)
}

// connectError reduces pgx's multi-line connect error (one line per address
// tried) to one line with its root cause.
func connectError(cfg *pgx.ConnConfig, err error) error {
	root := err
	for {
		var pgErr *pgconn.PgError
		if errors.As(root, &pgErr) {
			root = pgErr // a server's answer, e.g. authentication failed
			break
		}
		next := errors.Unwrap(root)
		if next == nil {
			if joined, ok := root.(interface{ Unwrap() []error }); ok && len(joined.Unwrap()) > 0 {
				next = joined.Unwrap()[0]
			}
		}
		if next == nil {
			break
		}
		root = next
	}
	return fmt.Errorf("cannot connect to database %q on %s:%d as %q: %s (is PostgreSQL running, and the URL right?)",
		cfg.Database, cfg.Host, cfg.Port, cfg.User, strings.ReplaceAll(root.Error(), "\n", " "))
}

// redact drops the URL (which may hold a password) from a parse error.
func redact(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("invalid connection string")
	}
	return err
}

// Beginner starts transactions; *pgxpool.Pool and pgx.Conn satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// maxAttempts bounds InTx's retries of serialization failures and deadlocks.
const maxAttempts = 5

// InTx runs fn inside a transaction and commits it. If fn or the commit
// fails, the transaction is rolled back (even when ctx is already cancelled)
// and the error returned. Serialization failures and deadlocks, which
// PostgreSQL asks clients to retry, are retried up to 5 attempts in all, so
// fn must be safe to run again (no side effects outside tx).
func InTx(ctx context.Context, db Beginner, fn func(tx pgx.Tx) error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = inTxOnce(ctx, db, fn)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func inTxOnce(ctx context.Context, db Beginner, fn func(tx pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		// Roll back even if ctx is done; a no-op after a successful commit.
		_ = tx.Rollback(context.WithoutCancel(ctx))
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// SQLSTATE codes this package tells apart.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == codeSerializationFailure || pgErr.Code == codeDeadlockDetected)
}

// IsUniqueViolation reports whether err is a unique_violation, and when
// constraint is not empty, one of that constraint (or unique index).
func IsUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != codeUniqueViolation {
		return false
	}
	return constraint == "" || pgErr.ConstraintName == constraint
}
