package auth_test

import (
	"errors"
	"testing"
	"time"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
)

// TestTokenCache: a verified token is remembered (by hash) until it
// expires, the cache stays within its bound, and a remembered token past
// its exp is refused like any other.
func TestTokenCache(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *auth.Config) { c.CacheSize = 3 })
	ctx := t.Context()
	claims := issuertest.UserClaims(t, b.iss, "alice")
	claims["exp"] = b.clock.Now().Add(time.Minute).Unix()
	short := issuertest.Mint(t, b.iss, devissuer.KeyCurrent, nil, claims)
	first, err := b.verifier.Verify(ctx, short)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.verifier.Verify(ctx, short)
	if err != nil || again != first || b.verifier.CachedTokens() != 1 {
		t.Fatalf("same token again: %p, %v, %d cached; want the cached identity %p, 1 cached", again, err, b.verifier.CachedTokens(), first)
	}
	for range 5 {
		if _, err := b.verifier.Verify(ctx, issuertest.UserToken(t, b.iss, "alice")); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.verifier.CachedTokens(); got != 3 {
		t.Fatalf("cached tokens after 6 distinct ones = %d, want the bound 3", got)
	}
	if _, err := b.verifier.Verify(ctx, short); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(time.Minute + time.Second)
	if _, err := b.verifier.Verify(ctx, short); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("a remembered token after its exp: %v, want ErrInvalidToken", err)
	}

	off := setup(t, func(c *auth.Config) { c.CacheSize = -1 })
	if _, err := off.verifier.Verify(ctx, issuertest.UserToken(t, off.iss, "alice")); err != nil || off.verifier.CachedTokens() != 0 {
		t.Fatalf("cache off: %v, %d cached; want valid, 0", err, off.verifier.CachedTokens())
	}
}
