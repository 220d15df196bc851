package pgcluster

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPersistentClusterKeepsDataAcrossRestarts starts a durable cluster,
// writes, stops it cleanly, starts it again from the same directory (no
// second initdb) and reads the data back.
func TestPersistentClusterKeepsDataAcrossRestarts(t *testing.T) {
	t.Parallel()
	binDir, err := FindBinDir(os.Getenv("PG_BIN"), DebianBinGlob, os.Getenv("PATH"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("/tmp", "pgc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// query runs sql (Exec when scan is false) on a new superuser connection.
	query := func(c *Cluster, sql string, scan bool) string {
		t.Helper()
		conn, err := pgx.Connect(ctx, c.SuperuserURL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var out string
		if scan {
			err = conn.QueryRow(ctx, sql).Scan(&out)
		} else {
			_, err = conn.Exec(ctx, sql)
		}
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return out
	}
	first, err := Start(ctx, Options{BinDir: binDir, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	query(first, "CREATE TABLE kept AS SELECT 'still here'::text AS v", false)
	first.Stop()
	select {
	case <-first.Exited():
	default:
		t.Fatal("Stop returned before the server exited")
	}
	second, err := Start(ctx, Options{BinDir: binDir, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	if got := query(second, "SELECT v FROM kept", true); got != "still here" {
		t.Fatalf("after a restart: %q, want the row written before", got)
	}
}
