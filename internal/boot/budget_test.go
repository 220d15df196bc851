package boot_test

import (
	"io"
	"strings"
	"testing"

	"github.com/decoupledshop/shop/internal/boot"
	"github.com/decoupledshop/shop/internal/pgtest"
)

// TestStartRefusesAPoolBudgetOverMaxConnections: replicas × (pool + 1
// direct) over what PostgreSQL allows stops the start with the numbers;
// behind a pooler (a separate direct URL) only the direct sessions count.
func TestStartRefusesAPoolBudgetOverMaxConnections(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t, empty)
	start := func(args ...string) error {
		c, err := parse(append([]string{"--database-url", dbURL, "--oidc-issuer-url", "http://127.0.0.1:1", "--migrate=false", "--admin-addr", "", "--oidc-issuer-wait", "0s"}, args...), nil)
		if err != nil {
			t.Fatal(err)
		}
		env, err := boot.Start(t.Context(), c, nil, io.Discard)
		if env != nil {
			env.Close()
		}
		return err
	}
	err := start("--database-replicas", "1000", "--database-max-conns", "10")
	if err == nil || !strings.Contains(err.Error(), "1000 replicas × (10 pooled + 1 direct) = 11000 connections") || !strings.Contains(err.Error(), "max_connections") {
		t.Errorf("1000 replicas of 10: %v; want the connection budget error naming the numbers", err)
	}
	// Within the budget, the start goes on to the issuer (unreachable here).
	err = start("--database-replicas", "2", "--database-max-conns", "10")
	if err == nil || strings.Contains(err.Error(), "budget") {
		t.Errorf("2 replicas of 10: %v; want the budget to pass (and the unreachable issuer to fail)", err)
	}
	// Behind a pooler, the pools are the pooler's business.
	err = start("--database-replicas", "20", "--database-max-conns", "1000", "--database-direct-url", dbURL+"&application_name=direct")
	if err == nil || strings.Contains(err.Error(), "budget") {
		t.Errorf("20 replicas of 1000 behind a pooler: %v; want the budget to pass", err)
	}
	if !strings.Contains(err.Error(), "token verification") {
		t.Errorf("behind a pooler: %v; want the start to reach the issuer", err)
	}
}
