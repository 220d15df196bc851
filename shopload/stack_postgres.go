package shopload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decoupledshop/shop/internal/pgcluster"
)

// The stack's PostgreSQL cluster: its databases, statistics and restarts.

// PostmasterPid is the PostgreSQL server's process id (0 if unknown).
func (s *Stack) PostmasterPid() int {
	raw, err := os.ReadFile(filepath.Join(s.pgOpts.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := bytes.Cut(raw, []byte("\n"))
	pid, _ := strconv.Atoi(string(first))
	return pid
}

// RestartPostgres is `pg_ctl restart -m immediate`: SIGQUIT to the
// postmaster (no checkpoint; crash recovery at the next start), then a
// start in the same directory. It returns when the server accepts
// connections again, and when that was.
func (s *Stack) RestartPostgres(ctx context.Context) (ready time.Time, err error) {
	s.pgMu.Lock()
	defer s.pgMu.Unlock()
	pid := s.PostmasterPid()
	if pid == 0 {
		return time.Time{}, errors.New("no postmaster.pid")
	}
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		return time.Time{}, err
	}
	select {
	case <-s.pg.Exited():
	case <-time.After(30 * time.Second):
		return time.Time{}, errors.New("postgres did not exit within 30 s of an immediate shutdown")
	}
	if s.pg, err = pgcluster.Start(ctx, s.pgOpts); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

// postgresVersion is the server's version string, or "unknown".
func postgresVersion(ctx context.Context, url string) string {
	if url == "" {
		return "unknown"
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "unknown"
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "unknown"
	}
	return v
}

// Analyze updates the planner's statistics of both services' databases:
// of every table that holds rows. An empty table is left alone: analyzed
// while empty, the planner takes it for empty until its next analysis and
// plans a scan of all of it (autovacuum does not analyze a table before
// it has changed by 50 rows either).
func (s *Stack) Analyze(ctx context.Context) error {
	for _, url := range []string{s.ProductDB, s.CartDB} {
		if err := analyzeFilled(ctx, url); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
	}
	return nil
}

func analyzeFilled(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables WHERE n_live_tup > 0`)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, t := range tables {
		if _, err := conn.Exec(ctx, "ANALYZE "+t); err != nil {
			return err
		}
	}
	return nil
}

// roleURL is the URL role uses for db.
func (s *Stack) roleURL(role, db string) string { return s.pg.URL(role, db) }

// createDatabase creates db owned by role (the superuser when role is ""),
// which alone may connect, as the dev stack does, and returns the
// superuser's URL for it.
func (s *Stack) createDatabase(ctx context.Context, role, db string) (string, error) {
	conn, err := pgx.Connect(ctx, s.pg.SuperuserURL())
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	n := pgx.Identifier{db}.Sanitize()
	stmts := []string{"CREATE DATABASE " + n}
	if role != "" {
		r := pgx.Identifier{role}.Sanitize()
		stmts = []string{
			"CREATE ROLE " + r + " LOGIN",
			"CREATE DATABASE " + n + " OWNER " + r,
			"REVOKE ALL ON DATABASE " + n + " FROM PUBLIC",
			"GRANT CONNECT, TEMPORARY ON DATABASE " + n + " TO " + r,
		}
	}
	for _, sql := range stmts {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return "", fmt.Errorf("%s: %w", sql, err)
		}
	}
	url := s.pg.URL("", db)
	if role != "" {
		dbConn, err := pgx.Connect(ctx, url)
		if err != nil {
			return "", err
		}
		defer dbConn.Close(ctx)
		if _, err := dbConn.Exec(ctx, "ALTER SCHEMA public OWNER TO "+pgx.Identifier{role}.Sanitize()); err != nil {
			return "", err
		}
	}
	return url, nil
}
