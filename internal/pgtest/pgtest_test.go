package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMain(m *testing.M) { Main(m) }

// notesSchema returns a schema whose migration creates table notes, counting its calls in calls.
func notesSchema(name, role string, calls *atomic.Int32) Schema {
	return Schema{Name: name, Role: role, Migrate: func(ctx context.Context, url string) error {
		calls.Add(1)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL)")
		return err
	}}
}

func dbName(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func TestDatabasesDoNotShareRows(t *testing.T) {
	t.Parallel()
	s := notesSchema("isolation", "isolationsvc", new(atomic.Int32))
	poolA, urlA := NewPool(t, s)
	poolB, urlB := NewPool(t, s)
	if dbName(t, urlA) == dbName(t, urlB) {
		t.Fatalf("two NewPool calls returned the same database %s", dbName(t, urlA))
	}

	if _, err := poolA.Exec(t.Context(), "INSERT INTO notes (body) VALUES ('written to a')"); err != nil {
		t.Fatal(err)
	}
	if _, err := poolB.Exec(t.Context(), "INSERT INTO notes (body) VALUES ('written to b')"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		db   string
		pool *pgxpool.Pool
		want string
	}{{"a", poolA, "written to a"}, {"b", poolB, "written to b"}} {
		rows, _ := tc.pool.Query(t.Context(), "SELECT body FROM notes")
		bodies, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(bodies) != 1 || bodies[0] != tc.want {
			t.Errorf("database %s holds notes %q, want only %q", tc.db, bodies, tc.want)
		}
	}
}

var onceRuns atomic.Int32

func TestTemplateIsMigratedOnce(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	// A schema name of its own per run: templates live as long as the test
	// binary, so with -count=2 a fixed name would reuse the first run's.
	s := notesSchema(fmt.Sprintf("once_%d", onceRuns.Add(1)), "oncesvc", &calls)
	t.Run("group", func(t *testing.T) {
		for i := range 8 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				pool, _ := NewPool(t, s)
				if _, err := pool.Exec(t.Context(), "INSERT INTO notes (body) VALUES ('x')"); err != nil {
					t.Fatalf("the clone lacks the migrated table: %v", err)
				}
			})
		}
	})
	if n := calls.Load(); n != 1 {
		t.Fatalf("Migrate ran %d times for 8 databases of one schema, want once", n)
	}
}

func TestRoleReachesOnlyItsOwnDatabases(t *testing.T) {
	t.Parallel()
	alphaURL := NewDatabase(t, notesSchema("alpha", "alphasvc", new(atomic.Int32)))
	betaURL := NewDatabase(t, notesSchema("beta", "betasvc", new(atomic.Int32)))

	intruder, _ := url.Parse(alphaURL) // alphasvc…
	intruder.Path = "/" + dbName(t, betaURL)
	conn, err := pgx.Connect(t.Context(), intruder.String()) // …into beta's database
	if err == nil {
		conn.Close(t.Context())
		t.Fatal("alphasvc connected to beta's database, want permission denied")
	}
	if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("alphasvc connecting to beta's database: got %v, want insufficient_privilege (42501)", err)
	}

	conn, err = pgx.Connect(t.Context(), alphaURL)
	if err != nil {
		t.Fatalf("alphasvc cannot connect to its own database: %v", err)
	}
	defer conn.Close(t.Context())
	var super, createDB, createRole bool
	var publicOwner string
	err = conn.QueryRow(t.Context(), `
		SELECT r.rolsuper, r.rolcreatedb, r.rolcreaterole, n.nspowner::regrole::text
		FROM pg_roles r, pg_namespace n
		WHERE r.rolname = current_user AND n.nspname = 'public'`).Scan(&super, &createDB, &createRole, &publicOwner)
	if err != nil {
		t.Fatal(err)
	}
	if super || createDB || createRole {
		t.Errorf("alphasvc: superuser=%t createdb=%t createrole=%t, want no such rights", super, createDB, createRole)
	}
	if publicOwner != "alphasvc" {
		t.Errorf("schema public is owned by %s, want alphasvc", publicOwner)
	}
}

func TestDatabaseIsDroppedAtCleanup(t *testing.T) {
	t.Parallel()
	admin, err := pgx.Connect(t.Context(), SuperuserURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(t.Context())
	exists := func(name string) bool {
		var ok bool
		if err := admin.QueryRow(t.Context(), "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}

	var name string
	t.Run("owner", func(t *testing.T) {
		pool, dbURL := NewPool(t, notesSchema("cleanup", "cleanupsvc", new(atomic.Int32)))
		name = dbName(t, dbURL)
		if !exists(name) {
			t.Fatalf("database %s does not exist during the test", name)
		}
		_ = pool // left open: the drop must not wait for it
	})
	if exists(name) {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}

func TestReapOrphansTakesOnlyUnlockedDirectories(t *testing.T) {
	t.Parallel()
	live, liveLock, err := makeDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { liveLock.Close(); os.RemoveAll(live) })
	orphan, orphanLock, err := makeDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(orphan) })
	orphanLock.Close() // as the kernel does when its test binary dies

	reapOrphans()

	if _, err := os.Stat(live); err != nil {
		t.Errorf("the directory of a live cluster was removed: %v", err)
	}
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the orphaned directory %s is still there (stat: %v)", orphan, err)
	}
}
