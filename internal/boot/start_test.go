package boot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/decoupledshop/shop/internal/boot"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/shoptest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// empty is a database as a service finds it on its first start.
var empty = pgtest.Schema{Name: "boot", Role: "bootsvc", Migrate: func(context.Context, string) error { return nil }}

var widgets = fstest.MapFS{
	"00001_create_widgets.sql": {Data: []byte("-- +goose Up\nCREATE TABLE widgets (id int PRIMARY KEY);\n")},
}

// lockedBuffer is a bytes.Buffer safe for a logger and a test reading it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A service started before its issuer waits for it, and every line it logs
// on the way (migrations, the wait) is JSON like the rest.
func TestStartWaitsForTheIssuerAndLogsJSON(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t, empty)
	issuerAddr := shoptest.FreeAddr(t)
	c, err := parse([]string{"--database-url", dbURL, "--oidc-issuer-url", "http://" + issuerAddr, "--admin-addr", "", "--log-format", "json"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	type result struct {
		env *boot.Env
		err error
	}
	done := make(chan result, 1)
	go func() {
		env, err := boot.Start(context.Background(), c, widgets, &logs)
		done <- result{env, err}
	}()
	startIssuerAfterARetry(t, &logs, issuerAddr)
	r := <-done
	if r.err != nil {
		t.Fatalf("Start with an issuer started late: %v", r.err)
	}
	r.env.Close()
	if r.env.DirectURL != dbURL {
		t.Errorf("Env.DirectURL without --database-direct-url = %q, want the --database-url %q", r.env.DirectURL, dbURL)
	}

	msgs := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("with --log-format json, a line is not JSON: %q", line)
		}
		msgs[rec["msg"].(string)] = true
	}
	for _, want := range []string{"migration applied", "OIDC issuer not reachable yet, retrying", "OIDC issuer reachable"} {
		if !msgs[want] {
			t.Errorf("no %q line logged; logs:\n%s", want, logs.String())
		}
	}
}

// --migrate-only migrates and stops there: no issuer needed, ErrMigrated.
func TestMigrateOnlyMigratesAndStops(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t, empty)
	c, err := parse([]string{"--database-url", dbURL, "--migrate-only", "--admin-addr", ""}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	env, err := boot.Start(context.Background(), c, widgets, &logs)
	if !errors.Is(err, boot.ErrMigrated) || env != nil {
		t.Fatalf("Start --migrate-only = %v, %v; want no Env and ErrMigrated", env, err)
	}
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM widgets").Scan(&n); err != nil {
		t.Errorf("after --migrate-only the migration's table is missing: %v", err)
	}
	if !strings.Contains(logs.String(), "migration applied") {
		t.Errorf("no migration logged:\n%s", logs.String())
	}
}
