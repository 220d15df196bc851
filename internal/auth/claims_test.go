package auth_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
)

func TestTimeClaimsAreCheckedStrictly(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := t.Context()
	claims := issuertest.UserClaims(t, b.iss, "alice")
	now := b.clock.Now().Unix()
	claims["nbf"] = now + 1
	claims["exp"] = now + 60
	tok := issuertest.Mint(t, b.iss, devissuer.KeyCurrent, nil, claims)

	if _, err := b.verifier.Verify(ctx, tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("nbf one second ahead: %v, want ErrInvalidToken (no leeway)", err)
	}
	b.clock.Advance(time.Second)
	if _, err := b.verifier.Verify(ctx, tok); err != nil {
		t.Fatalf("at nbf: %v, want valid", err)
	}
	b.clock.Advance(59 * time.Second)
	if _, err := b.verifier.Verify(ctx, tok); err != nil {
		t.Fatalf("at exp: %v, want still valid", err)
	}
	b.clock.Advance(time.Second)
	if _, err := b.verifier.Verify(ctx, tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("one second after exp: %v, want ErrInvalidToken", err)
	}
}

func TestIdentityFromTokens(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := t.Context()

	user, err := b.verifier.Verify(ctx, issuertest.UserToken(t, b.iss, "root"))
	if err != nil {
		t.Fatal(err)
	}
	if user.Subject != devissuer.Subject("root") || user.ClientID != "shop-web" || user.Service ||
		!user.HasRole("admin") || !user.HasScope("openid") || user.HasScope("events:write") {
		t.Errorf("admin user identity = %+v", user)
	}

	svc, err := b.verifier.Verify(ctx, issuertest.ServiceToken(t, b.iss, "productsvc"))
	if err != nil {
		t.Fatal(err)
	}
	if !svc.Service || svc.Subject != "productsvc" || svc.ClientID != "productsvc" || !svc.HasScope("events:write") || len(svc.Roles) != 0 {
		t.Errorf("service identity = %+v", svc)
	}

	// sub == client_id but with an azp instead of client_id still counts.
	claims, err := b.iss.ServiceClaims("productsvc")
	if err != nil {
		t.Fatal(err)
	}
	delete(claims, "client_id")
	claims["azp"] = "productsvc"
	id, err := b.verifier.Verify(ctx, issuertest.Mint(t, b.iss, devissuer.KeyCurrent, nil, claims))
	if err != nil || !id.Service {
		t.Errorf("service token with azp: %+v, %v; want a service identity", id, err)
	}

	// A user token whose sub differs from client_id is never a service,
	// even with the service scope.
	claims = issuertest.UserClaims(t, b.iss, "alice")
	claims["scope"] = "events:write"
	id, err = b.verifier.Verify(ctx, issuertest.Mint(t, b.iss, devissuer.KeyCurrent, nil, claims))
	if err != nil || id.Service {
		t.Errorf("user token with the service scope: %+v, %v; want a user identity", id, err)
	}
}

func TestRolesFromAConfiguredClaimPath(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *auth.Config) { c.RolesClaim = "realm_access.roles" })
	ctx := t.Context()
	claims := issuertest.UserClaims(t, b.iss, "alice")
	claims["roles"] = []string{"not-from-here"}
	claims["realm_access"] = map[string]any{"roles": []string{"admin", "catalog"}}
	id, err := b.verifier.Verify(ctx, issuertest.Mint(t, b.iss, devissuer.KeyCurrent, nil, claims))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(id.Roles, []string{"admin", "catalog"}) {
		t.Fatalf("roles = %v, want [admin catalog] from realm_access.roles", id.Roles)
	}

	delete(claims, "realm_access")
	id, err = b.verifier.Verify(ctx, issuertest.Mint(t, b.iss, devissuer.KeyCurrent, nil, claims))
	if err != nil || len(id.Roles) != 0 {
		t.Fatalf("no realm_access: roles %v, err %v; want no roles", id, err)
	}

	claims["realm_access"] = map[string]any{"roles": 7}
	if _, err := b.verifier.Verify(ctx, issuertest.Mint(t, b.iss, devissuer.KeyCurrent, nil, claims)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("roles of the wrong type: %v, want ErrInvalidToken", err)
	}
}

func TestRolesClaimWithDotsInItsName(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *auth.Config) { c.RolesClaim = "https://shop.example/roles" })
	claims := issuertest.UserClaims(t, b.iss, "alice")
	claims["https://shop.example/roles"] = []string{"admin"}
	id, err := b.verifier.Verify(t.Context(), issuertest.Mint(t, b.iss, devissuer.KeyCurrent, nil, claims))
	if err != nil || !id.HasRole("admin") {
		t.Fatalf("namespaced roles claim: %+v, %v; want admin", id, err)
	}
}

// TestIssuedAtLeeway: iat may be up to IssuedAtLeeway ahead of our clock
// (the issuer's clock may run a little fast), no further; exp and iat must
// be numbers, and iat is required.
func TestIssuedAtLeeway(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	claims := issuertest.UserClaims(t, b.iss, "alice")
	now := b.clock.Now()
	delete(claims, "nbf")
	claims["iat"] = now.Add(auth.IssuedAtLeeway).Unix()
	if _, err := b.verifier.Verify(t.Context(), issuertest.Mint(t, b.iss, devissuer.KeyCurrent, nil, claims)); err != nil {
		t.Errorf("iat %v ahead: %v, want accepted", auth.IssuedAtLeeway, err)
	}
	claims["iat"] = now.Add(auth.IssuedAtLeeway + time.Second).Unix()
	if _, err := b.verifier.Verify(t.Context(), issuertest.Mint(t, b.iss, devissuer.KeyCurrent, nil, claims)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("iat %v ahead: %v, want ErrInvalidToken", auth.IssuedAtLeeway+time.Second, err)
	}
	claims["iat"] = float64(now.Unix()) + 0.5 // fractional NumericDate: fine
	if _, err := b.verifier.Verify(t.Context(), issuertest.Mint(t, b.iss, devissuer.KeyCurrent, nil, claims)); err != nil {
		t.Errorf("fractional iat: %v, want accepted", err)
	}
	for _, kind := range []devissuer.Bad{devissuer.BadExpiryString, devissuer.BadIssuedAtString, devissuer.BadNoIssuedAt, devissuer.BadIssuedInFuture,
		devissuer.BadSubjectNUL, devissuer.BadSubjectControl, devissuer.BadSubjectInvalidUTF8, devissuer.BadSubjectEmpty, devissuer.BadSubjectTooLong, devissuer.BadClientIDControl} {
		if _, err := b.verifier.Verify(t.Context(), issuertest.Bad(t, b.iss, kind, issuertest.UserClaims(t, b.iss, "alice"))); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", kind, err)
		}
	}
	claims = issuertest.UserClaims(t, b.iss, "alice")
	claims["sub"] = strings.Repeat("ü", auth.MaxIdentifierBytes/2) // 254 bytes of UTF-8
	if _, err := b.verifier.Verify(t.Context(), issuertest.Mint(t, b.iss, devissuer.KeyCurrent, nil, claims)); err != nil {
		t.Errorf("sub of 254 bytes of non-ASCII letters: %v, want accepted", err)
	}
}
