package pgdb

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Budget is a service's share of PostgreSQL's connections, as checked at
// start-up by [CheckBudget].
type Budget struct {
	// Replicas is how many replicas of the service run at once (a rolling
	// restart may briefly add one: count the surge).
	Replicas int
	// MaxConns is each replica's pool size (--database-max-conns).
	MaxConns int
	// Direct is the connections each replica opens besides its pool on the
	// direct URL (a LISTEN session; migrations hold one more only while
	// they run).
	Direct int
}

// Need is the connections the replicas may open together.
func (b Budget) Need() int { return b.Replicas * (b.MaxConns + b.Direct) }

// ServerLimits are the connection settings of a PostgreSQL server.
type ServerLimits struct {
	// MaxConnections is max_connections.
	MaxConnections int
	// Reserved is superuser_reserved_connections plus, from PostgreSQL 16,
	// reserved_connections: slots an ordinary role cannot use.
	Reserved int
}

// Available is the connections ordinary roles may open.
func (l ServerLimits) Available() int { return l.MaxConnections - l.Reserved }

// ReadLimits asks the server at databaseURL (a direct URL: through a
// pooler the answer is the server's, not the pooler's) for its connection
// settings.
func ReadLimits(ctx context.Context, databaseURL string) (ServerLimits, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return ServerLimits{}, fmt.Errorf("parse database URL: %w", redact(err))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return ServerLimits{}, connectError(cfg, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var l ServerLimits
	// reserved_connections exists from PostgreSQL 16 on; missing_ok gives
	// NULL before.
	err = conn.QueryRow(ctx, `SELECT current_setting('max_connections')::int,
		current_setting('superuser_reserved_connections')::int
		+ coalesce(current_setting('reserved_connections', true)::int, 0)`).Scan(&l.MaxConnections, &l.Reserved)
	if err != nil {
		return ServerLimits{}, fmt.Errorf("read max_connections: %w", err)
	}
	return l, nil
}

// CheckBudget returns nil if b fits in limits' available connections, else
// an error naming every number and what to change. It knows only this
// service: the replicas of every other service on the same server must fit
// too (see docs/operations.md).
func CheckBudget(b Budget, limits ServerLimits) error {
	if b.Need() <= limits.Available() {
		return nil
	}
	return fmt.Errorf("connection budget exceeded: %d replicas × (%d pooled + %d direct) = %d connections, but PostgreSQL allows %d "+
		"(max_connections %d − %d reserved); lower --database-max-conns or --database-replicas, raise max_connections, or put a pooler in front (--database-url through PgBouncer, --database-direct-url straight to PostgreSQL)",
		b.Replicas, b.MaxConns, b.Direct, b.Need(), limits.Available(), limits.MaxConnections, limits.Reserved)
}
