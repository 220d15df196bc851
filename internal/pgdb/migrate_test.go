package pgdb_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3/lock"
	"golang.org/x/sync/errgroup"

	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/pgtest"
)

// empty is a database with nothing in it, as a service finds it on its first start.
var empty = pgtest.Schema{Name: "migrate", Role: "migratesvc", Migrate: func(context.Context, string) error { return nil }}

// widgets creates a table, then seeds it with one row in a later migration: a migration that ran
// twice shows as a second row (or as an error).
var widgets = fstest.MapFS{
	"00001_create_widgets.sql": {Data: []byte("-- +goose Up\nCREATE TABLE widgets (id int PRIMARY KEY, name text NOT NULL);\n")},
	"00002_seed_widgets.sql":   {Data: []byte("-- +goose Up\nINSERT INTO widgets (id, name) SELECT coalesce(max(id), 0) + 1, 'seed' FROM widgets;\n")},
}

func connectTo(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// wantMigratedOnce fails t unless widgets holds its one seeded row and each version is recorded once.
func wantMigratedOnce(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	var rows, versions, distinct int
	err := conn.QueryRow(t.Context(), `
		SELECT (SELECT count(*) FROM widgets),
		       count(*), count(DISTINCT version_id)
		FROM goose_db_version WHERE version_id > 0`).Scan(&rows, &versions, &distinct)
	if err != nil {
		t.Fatal(err)
	}
	if rows != 1 || versions != 2 || distinct != 2 {
		t.Fatalf("widgets has %d rows and goose recorded %d versions (%d distinct); want 1 row and versions 1 and 2 once each", rows, versions, distinct)
	}
}

func TestUpTwiceIsANoOp(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t, empty)

	for i := range 2 {
		if err := pgdb.Migrate(t.Context(), url, widgets); err != nil {
			t.Fatalf("Up #%d: %v", i+1, err)
		}
	}

	wantMigratedOnce(t, connectTo(t, url))
}

func TestConcurrentUpsMigrateOnce(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t, empty)
	// Hold goose's lock until both Ups wait for it, so that they are sure to overlap.
	holder := connectTo(t, url)
	if _, err := holder.Exec(t.Context(), "SELECT pg_advisory_lock($1)", lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}

	var g errgroup.Group
	for range 2 {
		g.Go(func() error { return pgdb.Migrate(t.Context(), url, widgets) })
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for waiting := 0; waiting < 2; {
		err := holder.QueryRow(ctx, `
			SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE '%pg_try_advisory_lock%'`).Scan(&waiting)
		if err != nil {
			t.Fatalf("waiting for both Ups to wait for the migration lock: %v", err)
		}
	}
	if _, err := holder.Exec(t.Context(), "SELECT pg_advisory_unlock($1)", lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}

	if err := g.Wait(); err != nil {
		t.Fatalf("concurrent Up: %v", err)
	}
	wantMigratedOnce(t, holder)
}

func TestBrokenMigrationLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t, empty)
	broken := fstest.MapFS{
		"00001_create_widgets.sql": widgets["00001_create_widgets.sql"],
		"00002_broken.sql": {Data: []byte("-- +goose Up\n" +
			"CREATE TABLE gadgets (id int PRIMARY KEY);\n" +
			"INSERT INTO no_such_table VALUES (1);\n")},
	}

	err := pgdb.Migrate(t.Context(), url, broken)
	if err == nil || !strings.Contains(err.Error(), "00002_broken.sql") {
		t.Fatalf("Up with a broken migration: got %v, want an error naming 00002_broken.sql", err)
	}

	var widgets, gadgets bool
	var version int64
	err = connectTo(t, url).QueryRow(t.Context(), `
		SELECT to_regclass('widgets') IS NOT NULL, to_regclass('gadgets') IS NOT NULL,
		       (SELECT max(version_id) FROM goose_db_version)`).Scan(&widgets, &gadgets, &version)
	if err != nil {
		t.Fatal(err)
	}
	if !widgets || gadgets || version != 1 {
		t.Fatalf("after the failed migration 2: widgets exists=%t, gadgets exists=%t, version=%d; want true, false, 1", widgets, gadgets, version)
	}
}
