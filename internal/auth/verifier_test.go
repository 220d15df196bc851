package auth_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
)

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := t.Context()
	if got := b.jwksFetches(); got != 1 {
		t.Fatalf("JWKS fetches after NewVerifier = %d, want 1", got)
	}
	original := issuertest.UserToken(t, b.iss, "alice")

	// First rotation: the new current key was published as "next" before,
	// so the cached JWKS already has it.
	if err := b.iss.RotateKeys(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.verifier.Verify(ctx, issuertest.UserToken(t, b.iss, "alice")); err != nil {
		t.Fatalf("token of the pre-published key: %v", err)
	}
	if got := b.jwksFetches(); got != 1 {
		t.Fatalf("JWKS fetches after the first rotation = %d, want 1 (key was pre-published)", got)
	}

	// Second rotation: the signing key was generated after our fetch, so
	// its kid is unknown and costs exactly one refetch.
	if err := b.iss.RotateKeys(); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(auth.DefaultMinRefreshInterval)
	rotated := issuertest.UserToken(t, b.iss, "alice")
	if _, err := b.verifier.Verify(ctx, rotated); err != nil {
		t.Fatalf("token of a key published after start: %v", err)
	}
	if _, err := b.verifier.Verify(ctx, rotated); err != nil {
		t.Fatalf("same token again: %v", err)
	}
	if got := b.jwksFetches(); got != 2 {
		t.Fatalf("JWKS fetches after the second rotation = %d, want 2", got)
	}
	if _, err := b.verifier.Verify(ctx, original); err != nil {
		t.Fatalf("token of a retired but still published key: %v", err)
	}

	// Unpublishing retired keys takes effect at the next refetch.
	b.iss.RemoveOldKeys()
	b.clock.Advance(auth.DefaultMinRefreshInterval)
	unknown := issuertest.Bad(t, b.iss, devissuer.BadUnknownKID, issuertest.UserClaims(t, b.iss, "alice"))
	if _, err := b.verifier.Verify(ctx, unknown); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("unknown kid: %v, want ErrInvalidToken", err)
	}
	if got := b.jwksFetches(); got != 3 {
		t.Fatalf("JWKS fetches = %d, want 3", got)
	}
	if _, err := b.verifier.Verify(ctx, original); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("token of a removed key after refetch: %v, want ErrInvalidToken", err)
	}
}

func TestUnknownKIDFloodFetchesAtMostOncePerInterval(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	api := startAPI(t, b.verifier, nil)
	alice := issuertest.UserClaims(t, b.iss, "alice")
	tokens := make([]string, 100)
	for n := range tokens {
		tokens[n] = issuertest.Mint(t, b.iss, devissuer.KeyUnpublished, devissuer.Header{"kid": fmt.Sprintf("flood-%d", n)}, alice)
	}
	flood := func() {
		t.Helper()
		var wg sync.WaitGroup
		for _, tok := range tokens {
			wg.Go(func() {
				if _, err := call(t.Context(), protocols[2], api, procUser, "Bearer "+tok); connect.CodeOf(err) != connect.CodeUnauthenticated {
					t.Errorf("unknown kid: %v, want Unauthenticated", err)
				}
			})
		}
		wg.Wait()
	}
	start := b.jwksFetches() // the fetch in NewVerifier at t0

	flood() // t0: inside the interval of the initial fetch
	if got := b.jwksFetches() - start; got != 0 {
		t.Fatalf("flood inside the interval of the initial fetch: %d fetches, want 0", got)
	}

	b.clock.Advance(auth.DefaultMinRefreshInterval) // t0+30s
	flood()
	if got := b.jwksFetches() - start; got != 1 {
		t.Fatalf("100 unknown kids after the interval: %d fetches, want exactly 1", got)
	}

	b.clock.Advance(auth.DefaultMinRefreshInterval - time.Second) // t0+59s
	flood()
	if got := b.jwksFetches() - start; got != 1 {
		t.Fatalf("flood 29s after the last fetch: %d fetches in total, want still 1", got)
	}

	b.clock.Advance(time.Second) // t0+60s: 30s since the last fetch
	flood()
	if got := b.jwksFetches() - start; got != 2 {
		t.Fatalf("flood 30s after the last fetch: %d fetches in total, want 2", got)
	}
}

func TestConcurrentCallersShareOneFetch(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for range 2 { // the second rotation signs with a key the cache lacks
		if err := b.iss.RotateKeys(); err != nil {
			t.Fatal(err)
		}
	}
	b.clock.Advance(auth.DefaultMinRefreshInterval)
	tok := issuertest.UserToken(t, b.iss, "alice")
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if _, err := b.verifier.Verify(t.Context(), tok); err != nil {
				t.Errorf("concurrent verify of a freshly rotated key: %v", err)
			}
		})
	}
	wg.Wait()
	if got := b.jwksFetches(); got != 2 {
		t.Fatalf("JWKS fetches = %d, want 2 (start + one shared refetch)", got)
	}
}

func TestBadSignatureOnAKnownKeyNeverRefetches(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.clock.Advance(auth.DefaultMinRefreshInterval) // a refetch would be allowed (the scheduled one is not due)
	alice := issuertest.UserClaims(t, b.iss, "alice")
	for _, kind := range []devissuer.Bad{devissuer.BadTampered, devissuer.BadKeyConfusion, devissuer.BadAlgNone} {
		if _, err := b.verifier.Verify(t.Context(), issuertest.Bad(t, b.iss, kind, alice)); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", kind, err)
		}
	}
	if got := b.jwksFetches(); got != 1 {
		t.Fatalf("JWKS fetches = %d, want 1: a known kid with a bad signature or alg must not refetch", got)
	}
}

func TestMinRefreshIntervalIsConfigurable(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *auth.Config) { c.MinRefreshInterval, c.RefreshInterval = time.Hour, time.Hour })
	unknown := issuertest.Bad(t, b.iss, devissuer.BadUnknownKID, issuertest.UserClaims(t, b.iss, "alice"))
	b.clock.Advance(59 * time.Minute)
	if _, err := b.verifier.Verify(t.Context(), unknown); err == nil {
		t.Fatal("unknown kid verified")
	}
	if got := b.jwksFetches(); got != 1 {
		t.Fatalf("fetches after 59m with a 1h interval = %d, want 1", got)
	}
	b.clock.Advance(time.Minute)
	if _, err := b.verifier.Verify(t.Context(), unknown); err == nil {
		t.Fatal("unknown kid verified")
	}
	if got := b.jwksFetches(); got != 2 {
		t.Fatalf("fetches after 1h = %d, want 2", got)
	}
}

// TestRemovedKeyStopsVerifyingOnSchedule: a key the issuer stops
// publishing stops verifying once the scheduled refresh is due, without any
// token with an unknown kid forcing a refetch.
func TestRemovedKeyStopsVerifyingOnSchedule(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := t.Context()
	original := issuertest.UserToken(t, b.iss, "alice")
	if err := b.iss.RotateKeys(); err != nil {
		t.Fatal(err)
	}
	b.iss.RemoveOldKeys() // original's key is no longer published
	fresh := issuertest.UserToken(t, b.iss, "alice")

	b.clock.Advance(auth.DefaultRefreshInterval - time.Second)
	if _, err := b.verifier.Verify(ctx, original); err != nil {
		t.Fatalf("before the refresh is due the cached key still verifies: %v", err)
	}
	if got := b.jwksFetches(); got != 1 {
		t.Fatalf("JWKS fetches before the refresh is due = %d, want 1", got)
	}
	b.clock.Advance(time.Second)
	if _, err := b.verifier.Verify(ctx, original); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("token of a removed key once the refresh is due: %v, want ErrInvalidToken", err)
	}
	if _, err := b.verifier.Verify(ctx, fresh); err != nil {
		t.Fatalf("token of the current key after the refresh: %v", err)
	}
	if got := b.jwksFetches(); got != 2 {
		t.Fatalf("JWKS fetches = %d, want 2 (one scheduled refresh)", got)
	}
	b.clock.Advance(auth.DefaultRefreshInterval - time.Second)
	if _, err := b.verifier.Verify(ctx, fresh); err != nil || b.jwksFetches() != 2 {
		t.Fatalf("before the next refresh is due: %v, %d fetches; want valid, 2", err, b.jwksFetches())
	}
	b.clock.Advance(time.Second)
	if _, err := b.verifier.Verify(ctx, fresh); err != nil || b.jwksFetches() != 3 {
		t.Fatalf("when the next refresh is due: %v, %d fetches; want valid, 3", err, b.jwksFetches())
	}
}

// TestJWKSMaxAgeShortensTheSchedule: the issuer's Cache-Control max-age
// shortens the refresh interval, but never below a minute.
func TestJWKSMaxAgeShortensTheSchedule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		maxAge, want time.Duration
	}{
		{2 * time.Minute, 2 * time.Minute},
		{time.Second, time.Minute},
		{time.Hour, auth.DefaultRefreshInterval},
	} {
		c := &clock{t: time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)}
		cfg := issuerConfig(c)
		cfg.JWKSMaxAge = tc.maxAge
		iss := issuertest.New(t, cfg)
		fetches := &countingTransport{counts: map[string]int{}}
		v, err := auth.NewVerifier(t.Context(), auth.Config{IssuerURL: iss.URL(), Now: c.Now,
			HTTPClient: &http.Client{Transport: fetches, Timeout: 10 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		tok := issuertest.UserToken(t, iss, "alice")
		c.Advance(tc.want - time.Second)
		if _, err := v.Verify(t.Context(), tok); err != nil || fetches.count(devissuer.JWKSPath) != 1 {
			t.Errorf("max-age %v: %v before %v: %v, %d fetches; want valid, 1", tc.maxAge, tc.want-time.Second, tc.want, err, fetches.count(devissuer.JWKSPath))
		}
		c.Advance(time.Second)
		if _, err := v.Verify(t.Context(), tok); err != nil || fetches.count(devissuer.JWKSPath) != 2 {
			t.Errorf("max-age %v: at %v: %v, %d fetches; want valid, 2", tc.maxAge, tc.want, err, fetches.count(devissuer.JWKSPath))
		}
	}
}

// TestScheduledRefreshFailureKeepsTheCachedKeys: with the issuer down when
// the refresh is due, cached keys keep verifying, and the refetch is retried
// after MinRefreshInterval, not on every request.
func TestScheduledRefreshFailureKeepsTheCachedKeys(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tok := issuertest.UserToken(t, b.iss, "alice")
	if err := b.iss.Close(); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(auth.DefaultRefreshInterval)
	for range 3 {
		if _, err := b.verifier.Verify(t.Context(), tok); err != nil {
			t.Fatalf("cached key with the issuer down: %v", err)
		}
	}
	if got := b.jwksFetches(); got != 2 {
		t.Fatalf("JWKS fetch attempts = %d, want 2 (start + one failed scheduled refresh)", got)
	}
	b.clock.Advance(auth.DefaultMinRefreshInterval)
	if _, err := b.verifier.Verify(t.Context(), tok); err != nil || b.jwksFetches() != 3 {
		t.Fatalf("after MinRefreshInterval: %v, %d fetch attempts; want valid, 3", err, b.jwksFetches())
	}
}

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

// hangingJWKS is a transport whose JWKS requests hang, once hang is set,
// until the fetch gives up: an issuer that stopped answering.
type hangingJWKS struct{ hang atomic.Bool }

func (h *hangingJWKS) RoundTrip(r *http.Request) (*http.Response, error) {
	if h.hang.Load() && r.URL.Path == devissuer.JWKSPath {
		<-r.Context().Done()
		return nil, r.Context().Err()
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestHangingIssuerDoesNotHoldRequests: when the scheduled refresh is due
// and the issuer does not answer, Verify goes on with the cached keys after
// a short wait instead of holding the request for the whole fetch timeout.
func TestHangingIssuerDoesNotHoldRequests(t *testing.T) {
	t.Parallel()
	transport := &hangingJWKS{}
	b := setup(t, func(c *auth.Config) { c.HTTPClient = &http.Client{Transport: transport} })
	tok := issuertest.UserToken(t, b.iss, "alice")
	transport.hang.Store(true)
	b.clock.Advance(auth.DefaultRefreshInterval)
	began := time.Now()
	if _, err := b.verifier.Verify(t.Context(), tok); err != nil {
		t.Fatalf("cached key while the issuer hangs: %v", err)
	}
	if waited := time.Since(began); waited > 8*time.Second {
		t.Fatalf("Verify waited %v for a hanging issuer, want about 2s, well under the 10s fetch timeout", waited)
	}
}
