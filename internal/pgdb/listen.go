package pgdb

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgxlisten"
)

// ListenConfig configures Listen.
type ListenConfig struct {
	// URL must reach PostgreSQL directly: LISTEN needs a session, which a
	// transaction-mode pooler does not keep.
	URL string
	// ApplicationName, when set, names the session (pg_stat_activity), so
	// the listeners of a service's replicas can be counted or found.
	ApplicationName string
	// Channel and Handler: the notifications to hear and what hears them
	// (a pgxlisten.BacklogHandler also runs after each (re)connection).
	Channel string
	Handler pgxlisten.Handler
	// BeforeConnect, if set, runs before each (re)connection.
	BeforeConnect func()
	// Logger hears of lost connections and handler errors at WARN,
	// prefixed with What.
	Logger *slog.Logger
	What   string
}

// Listen LISTENs as c says until ctx is done, reconnecting every second
// after a lost connection. Errors are logged, never returned.
func Listen(ctx context.Context, c ListenConfig) {
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			if c.BeforeConnect != nil {
				c.BeforeConnect()
			}
			cfg, err := pgx.ParseConfig(c.URL)
			if err != nil {
				return nil, err
			}
			if c.ApplicationName != "" {
				cfg.RuntimeParams["application_name"] = c.ApplicationName
			}
			return pgx.ConnectConfig(ctx, cfg)
		},
		LogError: func(ctx context.Context, err error) {
			if ctx.Err() == nil && c.Logger != nil {
				c.Logger.WarnContext(ctx, c.What, "error", err)
			}
		},
		ReconnectDelay: time.Second,
	}
	l.Handle(c.Channel, c.Handler)
	_ = l.Listen(ctx) // returns only when ctx is done
}
