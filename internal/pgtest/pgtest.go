// Package pgtest gives each test its own PostgreSQL database, cloned from a migrated template, on
// a throwaway cluster that the test binary starts on first use and stops when its tests end.
//
// A package that uses it calls [Main] from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Without TEST_DATABASE_URL, the first test that asks for a database starts a cluster (initdb and
// postgres from $PG_BIN, the highest /usr/lib/postgresql/<version>/bin, pg_config --bindir or
// $PATH) in a fresh directory under /tmp, reachable only through a unix socket there, with fsync,
// synchronous_commit and full_page_writes off. As root, the server runs as the postgres user. If
// no binaries are found, every test that asks fails, saying to apt-get install postgresql; none is
// skipped. A cluster left behind by a test binary that crashed is stopped by the kernel, and its
// directory is removed by the next cluster start.
//
// With TEST_DATABASE_URL set to a postgres:// URL of a superuser on a running server (PostgreSQL
// 13 or newer), no cluster is started. pgtest creates its roles there (see [Schema]), gives its
// templates and databases names that concurrently running test binaries do not share, and drops
// them when done.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decoupledshop/shop/internal/pgcluster"
)

// Schema describes one service database: the role that owns it and how to migrate it.
type Schema struct {
	// Name names the template and the databases cloned from it ("product" gives tmpl_product_<hex>
	// and product_<hex>): 1 to 30 lowercase letters, digits and underscores, starting with a letter.
	// Schemas with the same Name share one template, so they must have the same Role and Migrate.
	Name string
	// Role is the LOGIN role that owns the template and every database cloned from it, and runs
	// Migrate (same rules as Name, up to 63 characters). It is created if missing, with password
	// "pgtest" and no superuser, createdb or createrole rights; it owns the databases' public schema
	// and can connect to no other schema's databases.
	Role string
	// Migrate migrates the empty template database at url, connecting as Role. It is called once
	// per Name per test binary.
	Migrate func(ctx context.Context, url string) error
}

// rolePassword lets roles log in to a TEST_DATABASE_URL server that asks for passwords; the
// cluster pgtest starts trusts local connections and ignores it.
const rolePassword = "pgtest"

var (
	mainCalled atomic.Bool

	serverOnce sync.Once
	srv        *server
	srvErr     error

	// runID keeps this test binary's template names apart from another's on a shared server.
	runID = randomHex(4)

	templatesMu sync.Mutex
	templates   = map[string]*template{} // by Schema.Name
)

type server struct {
	url     string   // superuser URL
	base    *url.URL // url, parsed; databases' URLs are derived from it
	admin   *pgxpool.Pool
	cluster *cluster // nil when TEST_DATABASE_URL names the server
}

type template struct {
	name, role string
	once       sync.Once
	err        error
}

// Main runs the tests, then stops the cluster and removes its directory (or, with
// TEST_DATABASE_URL, drops this binary's templates), and exits with the tests' status, or 1 if
// the cleanup failed. Call it from TestMain: the other functions fail a test whose binary does not.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	mainCalled.Store(true)
	// Deferred, so that it runs even if m.Run panics. A panicking test kills the process instead:
	// then the kernel stops the server (see sysProcAttr) and the next start removes its directory.
	defer func() {
		if err := shutdown(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}()
	return m.Run()
}

// NewDatabase creates a fresh database cloned from the schema's migrated template, owned by
// s.Role, and returns a URL that connects to it as s.Role. Only s.Role (and superusers) may
// connect to it. It is dropped, with any connections still open, when the test and its subtests
// end. NewDatabase fails the test if the server cannot be started or the template not migrated.
func NewDatabase(t testing.TB, s Schema) string {
	t.Helper()
	srv := getServer(t)
	tmpl := srv.template(t, s)
	name := s.Name + "_" + randomHex(8)
	create := fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s OWNER %s", ident(name), ident(tmpl), ident(s.Role))
	if _, err := srv.admin.Exec(t.Context(), create); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := srv.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	restrict := fmt.Sprintf("REVOKE ALL ON DATABASE %[1]s FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE %[1]s TO %[2]s",
		ident(name), ident(s.Role))
	if _, err := srv.admin.Exec(t.Context(), restrict); err != nil {
		t.Fatalf("pgtest: restrict database %s to %s: %v", name, s.Role, err)
	}
	return srv.dbURL(url.UserPassword(s.Role, rolePassword), name)
}

// NewPool is [NewDatabase] plus a pool connected to it as s.Role, closed when the test ends
// (before the database is dropped). It fails the test if the database cannot be reached.
func NewPool(t testing.TB, s Schema) (*pgxpool.Pool, string) {
	t.Helper()
	dbURL := NewDatabase(t, s)
	pool, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := pool.Ping(t.Context()); err != nil {
		t.Fatalf("pgtest: connect to %s: %v", dbURL, err)
	}
	return pool, dbURL
}

// SuperuserURL returns a URL that connects to the server's maintenance database (postgres, or the
// one TEST_DATABASE_URL names) as a superuser, for tests that must create roles or databases
// themselves; dropping what they create is up to them.
func SuperuserURL(t testing.TB) string {
	t.Helper()
	return getServer(t).url
}

// getServer starts the server on first use and fails t if it could not be started.
func getServer(t testing.TB) *server {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("pgtest: TestMain must call pgtest.Main(m), which stops the cluster when the tests end")
	}
	serverOnce.Do(func() { srv, srvErr = startServer() })
	if srvErr != nil {
		t.Fatal(srvErr)
	}
	return srv
}

func startServer() (*server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := &server{url: os.Getenv("TEST_DATABASE_URL")}
	if s.url == "" {
		binDir, err := pgcluster.FindBinDir(os.Getenv("PG_BIN"), pgcluster.DebianBinGlob, os.Getenv("PATH"))
		if err != nil {
			return nil, fmt.Errorf("pgtest: %w (or set TEST_DATABASE_URL to a superuser URL of a running server)", err)
		}
		if s.cluster, err = startCluster(ctx, binDir); err != nil {
			return nil, err
		}
		s.url = s.cluster.SuperuserURL()
	}
	var err error
	if s.base, err = url.Parse(s.url); err != nil || (s.base.Scheme != "postgres" && s.base.Scheme != "postgresql") {
		return nil, errors.New("pgtest: TEST_DATABASE_URL must be a postgres:// URL")
	}
	if s.admin, err = pgxpool.New(ctx, s.url); err == nil {
		err = s.admin.Ping(ctx)
	}
	if err != nil {
		if s.admin != nil {
			s.admin.Close()
		}
		if s.cluster != nil {
			s.cluster.stop()
		}
		return nil, fmt.Errorf("pgtest: connect as superuser: %w", err)
	}
	return s, nil
}

// shutdown stops the server, if one was started, so that none is started afterwards.
func shutdown() error {
	serverOnce.Do(func() { srvErr = errors.New("pgtest: the tests are over") })
	if srv == nil {
		return nil
	}
	var errs []error
	if srv.cluster == nil {
		errs = srv.dropTemplates()
	}
	srv.admin.Close()
	if srv.cluster != nil {
		errs = append(errs, srv.cluster.stop())
	}
	return errors.Join(errs...)
}

// dropTemplates drops the templates this test binary created on a shared server.
func (srv *server) dropTemplates() []error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	templatesMu.Lock()
	defer templatesMu.Unlock()
	var errs []error
	for _, tmpl := range templates {
		if _, err := srv.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(tmpl.name)+" WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Errorf("pgtest: drop template %s: %w", tmpl.name, err))
		}
	}
	return errs
}

var identRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func (s Schema) validate() error {
	switch {
	case !identRE.MatchString(s.Name) || len(s.Name) > 30:
		return fmt.Errorf("pgtest: Schema.Name %q: want 1 to 30 lowercase letters, digits and underscores, starting with a letter", s.Name)
	case !identRE.MatchString(s.Role) || len(s.Role) > 63:
		return fmt.Errorf("pgtest: Schema.Role %q: want 1 to 63 lowercase letters, digits and underscores, starting with a letter", s.Role)
	case s.Migrate == nil:
		return fmt.Errorf("pgtest: Schema %q has no Migrate", s.Name)
	}
	return nil
}

// template returns the name of the schema's migrated template, building it on first use; the
// tests asking meanwhile wait for it. It fails t if the template cannot be built.
func (srv *server) template(t testing.TB, s Schema) string {
	t.Helper()
	if err := s.validate(); err != nil {
		t.Fatal(err)
	}
	templatesMu.Lock()
	tmpl, ok := templates[s.Name]
	if !ok {
		tmpl = &template{name: "tmpl_" + s.Name + "_" + runID, role: s.Role}
		templates[s.Name] = tmpl
	}
	templatesMu.Unlock()
	if tmpl.role != s.Role {
		t.Fatalf("pgtest: schema %q is used with roles %q and %q", s.Name, tmpl.role, s.Role)
	}
	tmpl.once.Do(func() { tmpl.err = srv.buildTemplate(tmpl.name, s) })
	if tmpl.err != nil {
		t.Fatal(tmpl.err)
	}
	return tmpl.name
}

// buildTemplate creates database name owned by s.Role, hands it schema public (closed to
// PUBLIC), migrates it as s.Role, and then closes it to connections so that it can be cloned.
func (srv *server) buildTemplate(name string, s Schema) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := srv.ensureRole(ctx, s.Role); err != nil {
		return err
	}
	create := fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 OWNER %s", ident(name), ident(s.Role))
	if _, err := srv.admin.Exec(ctx, create); err != nil {
		return fmt.Errorf("pgtest: create template %s: %w", name, err)
	}
	conn, err := pgx.Connect(ctx, srv.dbURL(nil, name))
	if err != nil {
		return fmt.Errorf("pgtest: connect to template %s: %w", name, err)
	}
	_, err = conn.Exec(ctx, "REVOKE ALL ON SCHEMA public FROM PUBLIC; ALTER SCHEMA public OWNER TO "+ident(s.Role))
	conn.Close(ctx)
	if err != nil {
		return fmt.Errorf("pgtest: give schema public of %s to %s: %w", name, s.Role, err)
	}
	if err := s.Migrate(ctx, srv.dbURL(url.UserPassword(s.Role, rolePassword), name)); err != nil {
		return fmt.Errorf("pgtest: migrate template %s: %w", name, err)
	}
	if _, err := srv.admin.Exec(ctx, "ALTER DATABASE "+ident(name)+" ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("pgtest: close template %s: %w", name, err)
	}
	return nil
}

// ensureRole creates role as a LOGIN role with no other rights, unless it exists.
func (srv *server) ensureRole(ctx context.Context, role string) error {
	create := fmt.Sprintf("CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '%s'", ident(role), rolePassword)
	_, err := srv.admin.Exec(ctx, create)
	var pgErr *pgconn.PgError
	// duplicate_object, or unique_violation when another session creates it at the same time.
	if errors.As(err, &pgErr) && (pgErr.Code == "42710" || pgErr.Code == "23505") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgtest: create role %s: %w", role, err)
	}
	return nil
}

// dbURL returns the server's URL with the database replaced by db and, unless user is nil, the
// user by user.
func (srv *server) dbURL(user *url.Userinfo, db string) string {
	u := *srv.base
	if user != nil {
		u.User = user
	}
	u.Path, u.RawPath = "/"+db, ""
	return u.String()
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails
	return hex.EncodeToString(b)
}
