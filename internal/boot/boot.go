// Package boot is the start-up every shop service shares: its common flags,
// telemetry (logger, tracing, metrics, admin listener), database pool and
// migrations, token verifier and hardened server.
package boot

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/server"
	"github.com/decoupledshop/shop/internal/telemetry"
)

// Config is what every service is configured with.
type Config struct {
	// Server configures the hardened HTTP server.
	Server server.Config
	// Auth configures access-token verification.
	Auth auth.Config
	// DatabaseURL is the service's own database, possibly through a
	// transaction-mode pooler.
	DatabaseURL string
	// DirectURL reaches the same database without a pooler, for migrations
	// (session advisory locks) and LISTEN/NOTIFY; default DatabaseURL.
	DirectURL string
	// MaxConns bounds the database pool (0: pgdb.DefaultMaxConns()).
	MaxConns int
	// Replicas is how many replicas of the service share the database,
	// for the connection budget checked at start-up (pgdb.CheckBudget).
	Replicas int
	// ExecMode is how statements are sent (pgdb.ExecPrepared by default).
	ExecMode pgdb.ExecMode
	// Migrate applies pending migrations at start-up.
	Migrate bool
	// MigrateOnly makes Start apply the migrations and return ErrMigrated,
	// for a Kubernetes init container or a Job.
	MigrateOnly bool
	// IssuerWait is how long Start retries an unreachable OIDC issuer before
	// it gives up (0: one attempt).
	IssuerWait time.Duration
	// Telemetry configures logs, tracing and the admin listener.
	Telemetry telemetry.Config
	// Service names the service in traces and metrics (the flag set's
	// name, set by RegisterFlags).
	Service string
}

// RegisterFlags defines the common flags on fs with their defaults; addr is
// the service's default listen address. The admin listener defaults to
// loopback on addr's port + 1000 (":8081" → "127.0.0.1:9081"). fs's name
// becomes Config.Service.
func (c *Config) RegisterFlags(fs *flag.FlagSet, addr string) {
	c.Service = fs.Name()
	c.Telemetry.RegisterFlags(fs, adminAddr(addr))
	fs.StringVar(&c.Server.Addr, "addr", addr, "listen address (Connect, gRPC and gRPC-Web on one port)")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL of the service's own database (required)")
	fs.StringVar(&c.DirectURL, "database-direct-url", "", "PostgreSQL URL bypassing any transaction-mode pooler, for migrations and LISTEN/NOTIFY (default: database-url)")
	fs.IntVar(&c.MaxConns, "database-max-conns", int(pgdb.DefaultMaxConns()), "maximum database connections in the pool (default: 4 per CPU, 10 to 32); every replica of every service together must stay below PostgreSQL's max_connections (default 100, 3 reserved) or PgBouncer's pool size")
	fs.IntVar(&c.Replicas, "database-replicas", 1, "how many replicas of this service run against the database (count a rolling restart's surge); start-up fails unless replicas × (database-max-conns + 1 direct) fits PostgreSQL's max_connections minus its reserved slots (without a pooler; behind one, replicas × 1 direct)")
	c.ExecMode = pgdb.ExecPrepared
	fs.Func("database-exec-mode", `how statements are sent: "prepared" (default: prepared once per connection and cached; direct connections and PgBouncer >= 1.21 with max_prepared_statements), "describe" (unnamed, parsed and planned every time; for PgBouncer < 1.21 in transaction mode) or "exec" (unnamed, parameter types guessed; any pooler)`, func(s string) error {
		c.ExecMode = pgdb.ExecMode(s)
		if !slices.Contains(pgdb.ExecModes, c.ExecMode) {
			return fmt.Errorf("%q is not one of prepared, describe or exec", s)
		}
		return nil
	})
	fs.BoolVar(&c.Migrate, "migrate", true, "apply pending database migrations at start-up")
	fs.BoolVar(&c.MigrateOnly, "migrate-only", false, "apply pending migrations over the direct URL, then exit (an init container or Job); needs no issuer")
	fs.StringVar(&c.Auth.IssuerURL, "oidc-issuer-url", "", "OIDC issuer URL whose access tokens are accepted (required)")
	fs.DurationVar(&c.IssuerWait, "oidc-issuer-wait", DefaultIssuerWait, "how long start-up retries an unreachable issuer (backoff 250ms to 5s, each attempt logged) before it exits; services may start before their issuer")
	fs.StringVar(&c.Auth.Audience, "oidc-audience", auth.DefaultAudience, "API audience access tokens must carry")
	fs.Func("oidc-allowed-types", "comma-separated JOSE typ values accepted (default \"at+jwt,JWT\")", func(s string) error {
		c.Auth.AllowedTypes = strings.Split(s, ",")
		return nil
	})
	fs.DurationVar(&c.Auth.RefreshInterval, "oidc-jwks-refresh", auth.DefaultRefreshInterval, "how often the issuer's signing keys (JWKS) are refetched, so a key it stops publishing stops verifying; its Cache-Control max-age shortens this (1m to 1h)")
	fs.StringVar(&c.Auth.RolesClaim, "oidc-roles-claim", auth.DefaultRolesClaim, "claim (or dotted path) holding the user's roles")
	fs.IntVar(&c.Server.ReadMaxBytes, "read-max-bytes", server.DefaultReadMaxBytes, "largest request message accepted, in bytes")
	fs.DurationVar(&c.Server.MaxDeadline, "max-deadline", server.DefaultMaxDeadline, "cap on any request's deadline")
	fs.DurationVar(&c.Server.DrainDelay, "drain-delay", server.DefaultDrainDelay, "time readiness is reported off before shutdown starts")
	fs.DurationVar(&c.Server.ShutdownTimeout, "shutdown-timeout", server.DefaultShutdownTimeout, "time in-flight requests get to finish at shutdown")
	fs.Func("cors-allowed-origins", "comma-separated browser origins (scheme://host[:port]) allowed to call the service cross-origin, e.g. http://localhost:8080 (default: none, no CORS)", func(s string) error {
		origins, err := parseOrigins(s)
		c.Server.CORSAllowedOrigins = origins
		return err
	})
}

// Validate checks what Start needs of c: valid telemetry settings, a
// database URL, an issuer URL (unless c.MigrateOnly) and an issuer wait that
// is not negative. Errors name the flag to fix.
func (c Config) Validate() error {
	if err := c.Telemetry.Validate(); err != nil {
		return err
	}
	if c.DatabaseURL == "" {
		return errors.New("--database-url (or DATABASE_URL) is required")
	}
	if c.Auth.IssuerURL == "" && !c.MigrateOnly {
		return errors.New("--oidc-issuer-url (or OIDC_ISSUER_URL) is required")
	}
	if c.IssuerWait < 0 {
		return errors.New("--oidc-issuer-wait must not be negative")
	}
	return nil
}

// adminAddr is the default admin address for the API address addr:
// loopback, port + 1000; "" when addr has no numeric port.
func adminAddr(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n <= 0 || n+1000 > 65535 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(n+1000))
}

// parseOrigins splits a comma-separated list of origins, each
// scheme://host[:port] with scheme http or https and nothing after it.
func parseOrigins(s string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
			return nil, fmt.Errorf("%q is not an origin like http://localhost:8080 (scheme://host[:port], no path)", o)
		}
		out = append(out, o)
	}
	return out, nil
}

// ErrMigrated is Start's answer with Config.MigrateOnly once the migrations
// are applied: the service should exit successfully.
var ErrMigrated = errors.New("migrations applied (--migrate-only)")

// Env is a started service's shared parts. Close releases them.
type Env struct {
	// Telemetry is the service's tracing, metrics and logging; its admin
	// listener is already serving.
	Telemetry *telemetry.Telemetry
	Logger    *slog.Logger
	Pool      *pgxpool.Pool
	// DirectURL reaches the database without a pooler, for LISTEN: the
	// --database-direct-url, or --database-url when that is not set.
	DirectURL string
	Verifier  *auth.Verifier
	Server    *server.Server
	// HandlerOptions are the options for the service's handlers: telemetry
	// (traces, RPC metrics, one log line per RPC) around the hardened
	// server options.
	HandlerOptions []connect.HandlerOption
}

// Start validates c, starts the telemetry (logs to logOut, in JSON unless
// --log-format says text; the admin listener), opens the database, applies
// migrations when asked (with c.MigrateOnly, only that: then it returns
// ErrMigrated), reads the issuer's discovery and keys (waiting up
// to c.IssuerWait for an unreachable issuer), and builds
// the server with a readiness check that pings the database. Errors are
// single lines that say what to fix.
func Start(ctx context.Context, c Config, migrations fs.FS, logOut io.Writer) (env *Env, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	directFlag := "--database-direct-url"
	if c.DirectURL == "" {
		c.DirectURL, directFlag = c.DatabaseURL, "--database-url"
	}
	if c.Server.DrainDelay == 0 {
		// The flag's default is server.DefaultDrainDelay, so 0 here was
		// asked for: no delay (server.Config reads 0 as "default").
		c.Server.DrainDelay = -1
	}
	tel, err := telemetry.New(c.Telemetry, c.Service, logOut)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tel.Close()
		}
	}()
	log := tel.Logger
	if c.Migrate || c.MigrateOnly {
		if err := migrate(ctx, c.DirectURL, directFlag, migrations, log); err != nil {
			return nil, err
		}
	}
	if c.MigrateOnly {
		log.InfoContext(ctx, "migrations applied; exiting (--migrate-only)")
		return nil, ErrMigrated
	}
	if err := checkBudget(ctx, c, directFlag, log); err != nil {
		return nil, err
	}
	pool, err := pgdb.Open(ctx, c.DatabaseURL, pgdb.Options{MaxConns: int32(c.MaxConns), ExecMode: c.ExecMode, Tracer: tel.QueryTracer()})
	if err != nil {
		return nil, fmt.Errorf("--database-url: %w", err)
	}
	verifier, err := newVerifier(ctx, c.Auth, c.IssuerWait, log)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("token verification against %s: %w", c.Auth.IssuerURL, err)
	}
	return newEnv(c, tel, pool, verifier), nil
}

// migrate applies the pending migrations over directURL (given by the flag
// directFlag), checking first that the database is reachable: that error
// is one line saying what is unreachable.
func migrate(ctx context.Context, directURL, directFlag string, migrations fs.FS, log *slog.Logger) error {
	if err := pgdb.Check(ctx, directURL); err != nil {
		return fmt.Errorf("%s: %w", directFlag, err)
	}
	return pgdb.MigrateLogged(ctx, directURL, migrations, log)
}

// newEnv builds the hardened server for c, ready when pool answers, and
// the Env around it.
func newEnv(c Config, tel *telemetry.Telemetry, pool *pgxpool.Pool, verifier *auth.Verifier) *Env {
	c.Server.Logger = tel.Logger
	c.Server.Ready = pool.Ping
	c.Server.Registry = tel.Registry
	tel.Registry.MustRegister(telemetry.PoolCollector(pool))
	return &Env{
		Telemetry: tel, Logger: tel.Logger, Pool: pool, DirectURL: c.DirectURL, Verifier: verifier,
		Server:         server.New(c.Server),
		HandlerOptions: append(tel.HandlerOptions(), server.HandlerOptions(c.Server)...),
	}
}

// checkBudget fails if c's replicas may open more connections than the
// server at the direct URL allows. Behind a pooler (a direct URL of its
// own) the pools count against the pooler's server-side pool instead,
// which the server cannot see: only the direct sessions are checked.
func checkBudget(ctx context.Context, c Config, directFlag string, log *slog.Logger) error {
	b := pgdb.Budget{Replicas: max(c.Replicas, 1), MaxConns: c.MaxConns, Direct: 1}
	if b.MaxConns <= 0 {
		b.MaxConns = int(pgdb.DefaultMaxConns())
	}
	if c.DirectURL != c.DatabaseURL {
		b.MaxConns = 0
	}
	limits, err := pgdb.ReadLimits(ctx, c.DirectURL)
	if err != nil {
		return fmt.Errorf("%s: %w", directFlag, err)
	}
	if err := pgdb.CheckBudget(b, limits); err != nil {
		return err
	}
	log.Info("database connection budget", "replicas", b.Replicas, "max_conns", b.MaxConns, "direct", b.Direct,
		"need", b.Need(), "available", limits.Available(), "pooled", c.DirectURL != c.DatabaseURL)
	return nil
}

// Close releases the database pool, stops the admin listener and flushes
// spans.
func (e *Env) Close() {
	e.Pool.Close()
	e.Telemetry.Close()
}
