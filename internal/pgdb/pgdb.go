// Package pgdb opens PostgreSQL pools the way both services need them,
// applies their embedded migrations, and runs transactions with
// rollback-on-error and bounded retries.
package pgdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"
)

// ExecMode is how statements are sent to PostgreSQL (see [Options]).
type ExecMode string

// Exec modes. The zero ExecMode means ExecPrepared.
const (
	// ExecPrepared prepares each statement once per connection and caches
	// it (pgx's QueryExecModeCacheStatement): PostgreSQL neither parses nor,
	// after five runs, plans it again unless a custom plan is cheaper. Needs
	// session-level prepared statements: a direct connection, PgBouncer in
	// session mode, or PgBouncer >= 1.21 in transaction mode with
	// max_prepared_statements set.
	ExecPrepared ExecMode = "prepared"
	// ExecDescribe sends every statement unnamed, parsed and planned on each
	// run, caching only its description (QueryExecModeCacheDescribe): for
	// poolers without prepared statements, such as PgBouncer before 1.21 (as
	// in Debian 12) in transaction mode; both services are tested so
	// (scaletest.TestServicesThroughPgBouncer).
	ExecDescribe ExecMode = "describe"
	// ExecUnprepared sends every statement unnamed in one round trip with
	// parameter types guessed from the Go values (QueryExecModeExec); it
	// works behind any pooler, but a guessed type can make a statement fail
	// where ExecDescribe would not: productsvc's outbox insert (a uuid[]
	// argument) does, so the services need ExecDescribe behind PgBouncer.
	ExecUnprepared ExecMode = "exec"
)

// ExecModes lists the valid exec modes, the default first.
var ExecModes = []ExecMode{ExecPrepared, ExecDescribe, ExecUnprepared}

var pgxModes = map[ExecMode]pgx.QueryExecMode{
	"":             pgx.QueryExecModeCacheStatement,
	ExecPrepared:   pgx.QueryExecModeCacheStatement,
	ExecDescribe:   pgx.QueryExecModeCacheDescribe,
	ExecUnprepared: pgx.QueryExecModeExec,
}

// DefaultMaxConns is the pool size Open uses when Options.MaxConns is 0:
// four per CPU this process may use (GOMAXPROCS), at least 10 and at most 32.
// Connections mostly wait (on the network, on row locks), so a pool of one
// per CPU starves under load; each replica of each service opens up to this
// many, and all of them together must stay below PostgreSQL's
// max_connections (default 100, 3 of them reserved for superusers), or, behind
// PgBouncer, its pool size.
func DefaultMaxConns() int32 {
	return int32(min(max(4*runtime.GOMAXPROCS(0), 10), 32))
}

// Options configure Open; the zero value takes every default.
type Options struct {
	// MaxConns bounds the pool; 0 means DefaultMaxConns().
	MaxConns int32
	// ExecMode is how statements are sent; "" means ExecPrepared.
	ExecMode ExecMode
	// Tracer, if set, also sees every query (telemetry's database spans).
	Tracer pgx.QueryTracer
}

// Open returns a connection pool for databaseURL and checks that the server
// answers. It fails on an unknown Options.ExecMode.
//
// Every wait for a free connection of the pool is bounded like InTx's (see
// AcquireTimeout): a starved pool fails a query with
// context.DeadlineExceeded while the caller's own context still has time,
// which the server answers as Unavailable. The pool's ConnConfig.Tracer
// does this; replacing it removes the bound.
//
// Statements are prepared and cached per connection by default (see
// ExecPrepared); Options.ExecMode chooses a mode for poolers that cannot
// keep prepared statements. Parameters in the URL that pgx does not know are
// sent to PostgreSQL as settings, e.g. plan_cache_mode=force_custom_plan to
// keep prepared statements but plan each run with its actual parameters.
func Open(ctx context.Context, databaseURL string, opts Options) (*pgxpool.Pool, error) {
	mode, ok := pgxModes[opts.ExecMode]
	if !ok {
		return nil, fmt.Errorf("exec mode %q is not one of %v", opts.ExecMode, ExecModes)
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", redact(err))
	}
	cfg.ConnConfig.DefaultQueryExecMode = mode
	cfg.ConnConfig.Tracer = acquireDeadline{}
	if opts.Tracer != nil {
		cfg.ConnConfig.Tracer = multitracer.New(acquireDeadline{}, opts.Tracer)
	}
	cfg.MaxConns = DefaultMaxConns()
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
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
		return true, err
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

// acquire takes a connection from pool, waiting at most acquireWait(ctx).
func acquire(ctx context.Context, pool *pgxpool.Pool) (*pgxpool.Conn, error) {
	wait := acquireWait(ctx)
	actx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	conn, err := pool.Acquire(actx)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("acquire connection: %w (waited %v, %d of %d in use)",
				ErrPoolExhausted, wait, pool.Stat().AcquiredConns(), pool.Stat().MaxConns())
		}
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	return conn, nil
}

// acquireWait is how long to wait for a pooled connection: AcquireTimeout
// or half of what is left of ctx's deadline, whichever is shorter.
func acquireWait(ctx context.Context) time.Duration {
	wait := AcquireTimeout
	if deadline, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(deadline)/2)
	}
	return wait
}

// acquireDeadline is the pools' tracer: it bounds each Acquire by
// acquireWait (pgxpool.AcquireTracer) and traces nothing else.
type acquireDeadline struct{}

type acquireCancelKey struct{}

func (acquireDeadline) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	ctx, cancel := context.WithTimeout(ctx, acquireWait(ctx))
	return context.WithValue(ctx, acquireCancelKey{}, cancel)
}

func (acquireDeadline) TraceAcquireEnd(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireEndData) {
	if cancel, ok := ctx.Value(acquireCancelKey{}).(context.CancelFunc); ok {
		cancel()
	}
}

func (acquireDeadline) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (acquireDeadline) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

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

// SQLSTATE codes this package tells apart.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeTooManyConnections   = "53300"
	codeAdminShutdown        = "57P01"
	codeCrashShutdown        = "57P02"
	codeCannotConnectNow     = "57P03"
	classConnectionException = "08"
)

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == codeSerializationFailure || pgErr.Code == codeDeadlockDetected)
}

// retryableBegin reports whether a failure before the transaction began is
// worth another attempt at once: a broken pooled connection (the pool
// replaces it) or a server that just refused a connection. A starved pool is
// not: the caller already waited AcquireTimeout.
func retryableBegin(err error) bool {
	return IsUnavailable(err) && !errors.Is(err, ErrPoolExhausted)
}

// IsUnavailable reports whether err means that the database could not serve
// the request now, so that the same request may succeed later: the server
// is unreachable, shutting down, starting up or out of connection slots
// (SQLSTATE class 08, 57P01, 57P02, 57P03, 53300), contention outlived
// InTx's retries (40001, 40P01), the connection broke
// (network errors, EOF, a closed connection or pool), no pooled connection
// was free in time (ErrPoolExhausted), or a commit got no answer
// (ErrCommitOutcomeUnknown). It is false for nil, for the caller's context errors (deadline or
// cancellation),
// and for every answer about the statement itself (constraint violations,
// syntax errors...), which are not transient.
func IsUnavailable(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrPoolExhausted), errors.Is(err, ErrCommitOutcomeUnknown):
		return true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false // the caller's own deadline or cancellation, not the database
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch pgErr.Code {
		case codeTooManyConnections, codeAdminShutdown, codeCrashShutdown, codeCannotConnectNow,
			codeSerializationFailure, codeDeadlockDetected:
			return true
		}
		return strings.HasPrefix(pgErr.Code, classConnectionException)
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, puddle.ErrClosedPool) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
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
