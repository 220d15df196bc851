package pgdb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Beginner starts transactions; *pgxpool.Pool and pgx.Conn satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

const (
	// maxAttempts bounds InTx's attempts at one transaction.
	maxAttempts = 5
	// retryBaseDelay is the first retry's maximum backoff; each later retry
	// doubles it, and the actual delay is drawn uniformly below it.
	retryBaseDelay = 10 * time.Millisecond
	// AcquireTimeout bounds how long InTx waits for a free connection of a
	// *pgxpool.Pool (at most half of what is left of ctx's deadline): a
	// starved pool then fails fast with ErrPoolExhausted, which callers
	// answer as Unavailable, instead of holding the request to its deadline.
	AcquireTimeout = 3 * time.Second
)

var (
	// ErrPoolExhausted is wrapped by InTx's error when no pooled connection
	// became free within AcquireTimeout.
	ErrPoolExhausted = errors.New("pgdb: no database connection free in time")
	// ErrCommitOutcomeUnknown is wrapped by InTx's error when COMMIT was sent
	// but no answer came back (the connection broke): the transaction may or
	// may not have been applied. Only an idempotent retry (the same
	// request_id) is safe.
	ErrCommitOutcomeUnknown = errors.New("pgdb: commit outcome unknown")
)

// InTx runs fn inside a transaction and commits it. If fn or the commit
// fails, the transaction is rolled back (even when ctx is already cancelled)
// and the error returned. Serialization failures and deadlocks, which
// PostgreSQL asks clients to retry, are retried up to 5 attempts in all with
// jittered exponential backoff, so fn must be safe to run again (no side
// effects outside tx); so are failures to begin on a broken connection.
//
// Waiting for a pooled connection is bounded by AcquireTimeout
// (ErrPoolExhausted), and a commit that got no answer wraps
// ErrCommitOutcomeUnknown; [IsUnavailable] reports both.
func InTx(ctx context.Context, db Beginner, fn func(tx pgx.Tx) error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		var began bool
		began, err = inTxOnce(ctx, db, fn)
		if err == nil || ctx.Err() != nil || !(retryable(err) || (!began && retryableBegin(err))) {
			return err
		}
		if attempt < maxAttempts && !sleep(ctx, backoff(attempt)) {
			return err
		}
	}
	return err
}

// inTxOnce runs one attempt; began reports whether BEGIN succeeded.
func inTxOnce(ctx context.Context, db Beginner, fn func(tx pgx.Tx) error) (began bool, err error) {
	if pool, ok := db.(*pgxpool.Pool); ok {
		conn, err := acquire(ctx, pool)
		if err != nil {
			return false, err
		}
		defer conn.Release()
		db = conn
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		// Roll back even if ctx is done; a no-op after a successful commit.
		_ = tx.Rollback(context.WithoutCancel(ctx))
	}()
	if err := fn(tx); err != nil {
		return hasBegun(tx), err
	}
	if err := tx.Commit(ctx); err != nil {
		// Without an answer from the server the commit may have been
		// applied. pgconn.SafeToRetry cannot tell: pgx reports a connection
		// lost while waiting for COMMIT's answer as "conn closed", which
		// claims to be safe to retry.
		_, answered := errors.AsType[*pgconn.PgError](err)
		if !answered && !errors.Is(err, pgx.ErrTxCommitRollback) && !errors.Is(err, pgx.ErrTxClosed) {
			return true, fmt.Errorf("commit transaction: %w: %w", ErrCommitOutcomeUnknown, err)
		}
		return true, fmt.Errorf("commit transaction: %w", err)
	}
	return true, nil
}

// hasBegun reports whether tx has begun on the server: a Pipelined
// transaction sends BEGIN with its first statement that needs an answer.
func hasBegun(tx pgx.Tx) bool {
	p, ok := tx.(interface{ began() bool })
	return !ok || p.began()
}

// backoff returns a random delay below retryBaseDelay·2^(attempt-1).
func backoff(attempt int) time.Duration {
	return rand.N(retryBaseDelay << (attempt - 1))
}

// sleep waits for d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
