package auth_test

import (
	"errors"
	"fmt"
	"net/http"
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
