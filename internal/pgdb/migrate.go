package pgdb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Migrate applies every pending migration in migrations to the PostgreSQL database at databaseURL and
// returns nil once the database is at the latest version; it is a no-op when nothing is pending.
//
// Migrations are goose SQL files named <version>_<name>.sql at the root of migrations (pass
// [fs.Sub] for a subdirectory), each starting with "-- +goose Up". Each file runs in its own
// transaction unless it is annotated "-- +goose NO TRANSACTION", so a failing file leaves nothing
// of itself behind: Migrate returns its error (naming the file), and the files before it stay applied.
//
// Replicas may call Migrate at the same time: a session-level advisory lock makes them take turns, so
// every migration runs exactly once. Because the lock lives on the session, databaseURL must be a
// direct connection, not one through a transaction-mode pooler. Migrate waits for the lock for at most
// five minutes, or until ctx is done. It logs each file it applied to [slog.Default].
func Migrate(ctx context.Context, databaseURL string, migrations fs.FS) error {
	return MigrateLogged(ctx, databaseURL, migrations, slog.Default())
}

// MigrateLogged is [Migrate] logging each file it applied to log, so a service's
// migration lines share its log format.
func MigrateLogged(ctx context.Context, databaseURL string, migrations fs.FS, log *slog.Logger) error {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("migrate: parse database URL: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()

	// Poll for the lock every second (goose's default is every 5 s), up to 300 times.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("migrate: create session locker: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true), // only the files given, never Go migrations registered elsewhere
	)
	if err != nil {
		return fmt.Errorf("migrate: load migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		if partial := (*goose.PartialError)(nil); errors.As(err, &partial) {
			return fmt.Errorf("migrate: %s: %w", partial.Failed.Source.Path, partial.Err)
		}
		return fmt.Errorf("migrate: apply: %w", err)
	}
	for _, r := range results {
		log.InfoContext(ctx, "migration applied", "file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}
