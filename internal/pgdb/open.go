// Package pgdb opens PostgreSQL pools the way both services need them,
// applies their embedded migrations, and runs transactions with
// rollback-on-error and bounded retries.
package pgdb

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
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
