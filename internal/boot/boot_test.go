package boot_test

import (
	"flag"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/boot"
	"github.com/decoupledshop/shop/internal/envflag"
	"github.com/decoupledshop/shop/internal/pgdb"
)

// parse registers the common flags and parses args and env.
func parse(args []string, env map[string]string) (boot.Config, error) {
	var c boot.Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs, ":0")
	err := envflag.Parse(fs, args, func(k string) string { return env[k] })
	return c, err
}

func TestJWKSRefreshFlag(t *testing.T) {
	t.Parallel()
	c, err := parse(nil, nil)
	if err != nil || c.Auth.RefreshInterval != auth.DefaultRefreshInterval {
		t.Errorf("default: %v, %v; want %v", c.Auth.RefreshInterval, err, auth.DefaultRefreshInterval)
	}
	c, err = parse(nil, map[string]string{"OIDC_JWKS_REFRESH": "90s"})
	if err != nil || c.Auth.RefreshInterval != 90*time.Second {
		t.Errorf("OIDC_JWKS_REFRESH=90s: %v, %v; want 1m30s", c.Auth.RefreshInterval, err)
	}
}

func TestCORSAllowedOriginsFlag(t *testing.T) {
	t.Parallel()

	c, err := parse([]string{"--cors-allowed-origins", "http://localhost:8080, http://127.0.0.1:8080,,https://shop.example"}, nil)
	if err != nil {
		t.Fatalf("valid origins: %v", err)
	}
	if want := []string{"http://localhost:8080", "http://127.0.0.1:8080", "https://shop.example"}; !slices.Equal(c.Server.CORSAllowedOrigins, want) {
		t.Errorf("CORSAllowedOrigins = %q, want %q", c.Server.CORSAllowedOrigins, want)
	}

	c, err = parse(nil, map[string]string{"CORS_ALLOWED_ORIGINS": "http://localhost:5173"})
	if err != nil || !slices.Equal(c.Server.CORSAllowedOrigins, []string{"http://localhost:5173"}) {
		t.Errorf("from CORS_ALLOWED_ORIGINS: %q, %v; want [http://localhost:5173]", c.Server.CORSAllowedOrigins, err)
	}

	c, err = parse(nil, nil)
	if err != nil || c.Server.CORSAllowedOrigins != nil {
		t.Errorf("default: %q, %v; want no origins (no CORS)", c.Server.CORSAllowedOrigins, err)
	}

	for _, bad := range []string{"*", "localhost:8080", "http://localhost:8080/", "http://localhost:8080/app", "ftp://localhost", "http://", "http://a@localhost:8080", "http://localhost:8080?x"} {
		if _, err := parse([]string{"--cors-allowed-origins", bad}, nil); err == nil {
			t.Errorf("--cors-allowed-origins %q accepted, want an error", bad)
		}
	}
}

func TestDatabaseFlags(t *testing.T) {
	t.Parallel()
	c, err := parse(nil, nil)
	if err != nil || c.ExecMode != pgdb.ExecPrepared || c.MaxConns != int(pgdb.DefaultMaxConns()) {
		t.Errorf("defaults: exec mode %q, max conns %d, %v; want prepared, %d", c.ExecMode, c.MaxConns, err, pgdb.DefaultMaxConns())
	}
	c, err = parse([]string{"--database-exec-mode", "describe"}, nil)
	if err != nil || c.ExecMode != pgdb.ExecDescribe {
		t.Errorf("--database-exec-mode describe: %q, %v", c.ExecMode, err)
	}
	c, err = parse(nil, map[string]string{"DATABASE_EXEC_MODE": "exec"})
	if err != nil || c.ExecMode != pgdb.ExecUnprepared {
		t.Errorf("DATABASE_EXEC_MODE=exec: %q, %v", c.ExecMode, err)
	}
	if _, err := parse([]string{"--database-exec-mode", "simple"}, nil); err == nil {
		t.Error("--database-exec-mode simple accepted, want an error")
	}
}
