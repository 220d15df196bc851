// Package issuertest starts a devissuer for a test and mints tokens with
// the test failing on error, so tests read as stories.
package issuertest

import (
	"log/slog"
	"testing"

	"github.com/decoupledshop/shop/internal/devissuer"
)

// New starts an issuer on a fresh loopback port and closes it when the test
// ends. With no cfg.Logger, the development-only notice goes to the test log.
func New(t testing.TB, cfg devissuer.Config) *devissuer.Issuer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	iss, err := devissuer.Start(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start dev issuer: %v", err)
	}
	t.Cleanup(func() {
		if err := iss.Close(); err != nil {
			t.Errorf("close dev issuer: %v", err)
		}
	})
	return iss
}

// UserToken returns an access token for a configured user.
func UserToken(t testing.TB, iss *devissuer.Issuer, username string) string {
	t.Helper()
	v, err := iss.UserToken(username)
	check(t, err)
	return v
}

// ServiceToken returns a service token for a configured client.
func ServiceToken(t testing.TB, iss *devissuer.Issuer, clientID string) string {
	t.Helper()
	v, err := iss.ServiceToken(clientID)
	check(t, err)
	return v
}

// UserClaims returns the claims of a user's access token, to adjust and Mint.
func UserClaims(t testing.TB, iss *devissuer.Issuer, username string) devissuer.Claims {
	t.Helper()
	v, err := iss.UserClaims(username)
	check(t, err)
	return v
}

// Mint signs claims with the chosen key and header overrides.
func Mint(t testing.TB, iss *devissuer.Issuer, key devissuer.Key, header devissuer.Header, claims devissuer.Claims) string {
	t.Helper()
	v, err := iss.Mint(key, header, claims)
	check(t, err)
	return v
}

// Bad returns a deliberately invalid token of the given kind.
func Bad(t testing.TB, iss *devissuer.Issuer, kind devissuer.Bad, base devissuer.Claims) string {
	t.Helper()
	v, err := iss.MintBad(kind, base)
	check(t, err)
	return v
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
