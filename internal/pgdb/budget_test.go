package pgdb_test

import (
	"strings"
	"testing"

	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/pgtest"
)

// TestReadLimitsReadsTheServer: the limits are the server's settings, as
// SHOW reports them.
func TestReadLimitsReadsTheServer(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t, schema)
	limits, err := pgdb.ReadLimits(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if limits.MaxConnections < 1 || limits.Reserved < 0 || limits.Available() > limits.MaxConnections {
		t.Fatalf("limits %+v: want max_connections ≥ 1 and reserved ≥ 0", limits)
	}
	pool, err := pgdb.Open(t.Context(), dbURL, pgdb.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var want int
	if err := pool.QueryRow(t.Context(), "SELECT setting::int FROM pg_settings WHERE name = 'max_connections'").Scan(&want); err != nil {
		t.Fatal(err)
	}
	if limits.MaxConnections != want {
		t.Errorf("max_connections %d, want %d", limits.MaxConnections, want)
	}
}

// TestCheckBudget: replicas × (pool + direct) may use every available
// connection and not one more; the refusal names the numbers.
func TestCheckBudget(t *testing.T) {
	t.Parallel()
	limits := pgdb.ServerLimits{MaxConnections: 100, Reserved: 3}
	if err := pgdb.CheckBudget(pgdb.Budget{Replicas: 3, MaxConns: 31, Direct: 1}, limits); err != nil {
		t.Errorf("3 × (31 + 1) = 96 of 97 refused: %v", err)
	}
	if err := pgdb.CheckBudget(pgdb.Budget{Replicas: 1, MaxConns: 96, Direct: 1}, limits); err != nil {
		t.Errorf("1 × (96 + 1) = 97 of 97 refused: %v", err)
	}
	err := pgdb.CheckBudget(pgdb.Budget{Replicas: 4, MaxConns: 32, Direct: 1}, limits)
	if err == nil {
		t.Fatal("4 × (32 + 1) = 132 of 97 accepted")
	}
	for _, want := range []string{"4 replicas", "32 pooled", "132 connections", "allows 97", "max_connections 100", "3 reserved", "--database-max-conns"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
