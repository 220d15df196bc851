package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/decoupledshop/shop/internal/pgcluster"
)

// defaultDataDir is where the local cluster keeps its data between runs. As
// root the server runs as the postgres user, which cannot enter /root, so
// root's data lives under /var/tmp.
func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/tmp/shopdev"
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "shopdev")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("shopdev-%d", os.Getuid()))
}

// serviceDB is one service's database and the role that owns it.
type serviceDB struct{ name, role string }

var (
	productDB = serviceDB{name: "product", role: "productsvc"}
	cartDB    = serviceDB{name: "cart", role: "cartsvc"}
)

// findPostgres returns the directory holding initdb and postgres (pgBin,
// if set, names it), or a one-line error saying what to do.
func findPostgres(pgBin string) (string, error) {
	binDir, err := pgcluster.FindBinDir(pgBin, pgcluster.DebianBinGlob, os.Getenv("PATH"))
	if errors.Is(err, pgcluster.ErrNoBinaries) {
		return "", errors.New("PostgreSQL server binaries not found: apt-get install postgresql, set PG_BIN, or pass --product-database-url and --cart-database-url")
	}
	return binDir, err
}

// startPostgres starts (initializing on first use) the local cluster in
// dir with the binaries in binDir, and makes sure each service has its own
// role and database.
func startPostgres(ctx context.Context, dir, binDir string) (*pgcluster.Cluster, error) {
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{BinDir: binDir, Dir: filepath.Join(dir, "pg"), MaxConnections: 100})
	if err != nil {
		return nil, fmt.Errorf("start local PostgreSQL in %s: %w", dir, err)
	}
	for _, db := range []serviceDB{productDB, cartDB} {
		if err := ensureDatabase(ctx, cluster, db); err != nil {
			cluster.Stop()
			return nil, err
		}
	}
	return cluster, nil
}

// ensureDatabase creates db's role and database if missing; only the role
// may connect to it (each service's data is its own).
func ensureDatabase(ctx context.Context, cluster *pgcluster.Cluster, db serviceDB) error {
	conn, err := pgx.Connect(ctx, cluster.SuperuserURL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	role, name := pgx.Identifier{db.role}.Sanitize(), pgx.Identifier{db.name}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", db.role).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
			return fmt.Errorf("create role %s: %w", db.role, err)
		}
	}
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db.name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	for _, sql := range []string{
		"CREATE DATABASE " + name + " OWNER " + role,
		"REVOKE ALL ON DATABASE " + name + " FROM PUBLIC",
		"GRANT CONNECT, TEMPORARY ON DATABASE " + name + " TO " + role,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create database %s: %w", db.name, err)
		}
	}
	// The role owns its schema, so its migrations can create tables there.
	dbConn, err := pgx.Connect(ctx, cluster.URL("", db.name))
	if err != nil {
		return err
	}
	defer dbConn.Close(ctx)
	_, err = dbConn.Exec(ctx, "ALTER SCHEMA public OWNER TO "+role)
	return err
}
