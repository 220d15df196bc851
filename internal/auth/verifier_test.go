package auth_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
)

func TestTypeAllowList(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	claims := issuertest.UserClaims(t, b.iss, "alice")
	for typ, wantOK := range map[string]bool{
		"at+jwt": true, "AT+JWT": true, "application/at+jwt": true, "JWT": true, "jwt": true,
		"logout+jwt": false, "dpop+jwt": false, "secevent+jwt": false, "JOSE": false,
	} {
		_, err := b.verifier.Verify(t.Context(), issuertest.Mint(t, b.iss, devissuer.KeyCurrent, devissuer.Header{"typ": typ}, claims))
		if (err == nil) != wantOK {
			t.Errorf("typ %q: err %v, want accepted=%t", typ, err, wantOK)
		}
	}
	if _, err := b.verifier.Verify(t.Context(), issuertest.Mint(t, b.iss, devissuer.KeyCurrent, devissuer.Header{"typ": 5}, claims)); err == nil {
		t.Error("numeric typ accepted")
	}

	strict := setup(t, func(c *auth.Config) { c.AllowedTypes = []string{"at+jwt"} })
	if _, err := strict.verifier.Verify(t.Context(), issuertest.Mint(t, strict.iss, devissuer.KeyCurrent, devissuer.Header{"typ": "JWT"}, issuertest.UserClaims(t, strict.iss, "alice"))); err == nil {
		t.Error("typ JWT accepted by an at+jwt-only verifier")
	}

	lax := setup(t, func(c *auth.Config) { c.AllowedTypes = []string{"at+jwt", ""} })
	if _, err := lax.verifier.Verify(t.Context(), issuertest.Bad(t, lax.iss, devissuer.BadMissingType, issuertest.UserClaims(t, lax.iss, "alice"))); err != nil {
		t.Errorf("missing typ with \"\" allowed: %v, want accepted", err)
	}
}

func TestOtherAlgorithmsAndKeys(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	claims := issuertest.UserClaims(t, b.iss, "alice")
	// PS256 with the published RSA key is a legitimate asymmetric choice...
	ps := issuertest.Mint(t, b.iss, devissuer.KeyCurrent, devissuer.Header{"alg": "PS256"}, claims)
	// ...but the JWKS pins the key to RS256, so it is refused.
	if _, err := b.verifier.Verify(t.Context(), ps); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("PS256 with a key published for RS256: %v, want ErrInvalidToken", err)
	}
	for _, alg := range []string{"HS256", "HS384", "HS512", "none"} {
		tok := issuertest.Mint(t, b.iss, devissuer.KeyCurrent, devissuer.Header{"alg": alg}, claims)
		if _, err := b.verifier.Verify(t.Context(), tok); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("alg %s: %v, want ErrInvalidToken", alg, err)
		}
	}
	// A token without kid is checked against every cached key.
	noKID := issuertest.Mint(t, b.iss, devissuer.KeyCurrent, devissuer.Header{"kid": nil}, claims)
	if _, err := b.verifier.Verify(t.Context(), noKID); err != nil {
		t.Errorf("token without kid from the current key: %v", err)
	}
	// A huge token is refused before parsing.
	if _, err := b.verifier.Verify(t.Context(), strings.Repeat("a", 20000)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("oversized token: %v, want ErrInvalidToken", err)
	}
}

func TestNewVerifierFailures(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Now()}
	iss := issuertest.New(t, issuerConfig(c))
	for name, cfg := range map[string]auth.Config{
		"no issuer":             {},
		"issuer mismatch":       {IssuerURL: iss.URL() + "/"},
		"unreachable issuer":    {IssuerURL: "http://127.0.0.1:1"},
		"logout+jwt allowed":    {IssuerURL: iss.URL(), AllowedTypes: []string{"at+jwt", "application/logout+jwt"}},
		"negative refresh time": {IssuerURL: iss.URL(), MinRefreshInterval: -time.Second},
		"refresh too often":     {IssuerURL: iss.URL(), RefreshInterval: time.Second},
		"refresh too rarely":    {IssuerURL: iss.URL(), RefreshInterval: 2 * time.Hour},
	} {
		if _, err := auth.NewVerifier(t.Context(), cfg); err == nil {
			t.Errorf("%s: NewVerifier succeeded, want an error", name)
		}
	}
	if _, err := auth.NewVerifier(t.Context(), auth.Config{IssuerURL: iss.URL(), HTTPClient: http.DefaultClient}); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}
