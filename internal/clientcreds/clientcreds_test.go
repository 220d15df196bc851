package clientcreds_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/internal/clientcreds"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// tokenServer is a token endpoint that counts its requests and issues
// numbered tokens with a configurable expires_in (or fails).
type tokenServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	expires any // what to put into expires_in; nil omits it
	failing atomic.Bool
	gate    chan struct{} // if set, each request waits for a receive
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{expires: 300}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ts.gate != nil {
			<-ts.gate
		}
		n := ts.fetches.Add(1)
		if id, secret, ok := r.BasicAuth(); !ok || id != "relay" || secret != "s3cret" || r.FormValue("grant_type") != "client_credentials" || r.FormValue("scope") != "events:write" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		if ts.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":"temporarily_unavailable"}`)
			return
		}
		body := map[string]any{"access_token": fmt.Sprintf("token-%d", n), "token_type": "Bearer"}
		ts.mu.Lock()
		if ts.expires != nil {
			body["expires_in"] = ts.expires
		}
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) expiresIn(v any) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.expires = v
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newSource(ts *tokenServer, c *clock) *clientcreds.Source {
	return clientcreds.New(clientcreds.Config{
		TokenURL: ts.URL, ClientID: "relay", ClientSecret: "s3cret", Scopes: []string{"events:write"}, Now: c.Now,
	})
}

func mustToken(t *testing.T, s *clientcreds.Source) string {
	t.Helper()
	tok, err := s.Token(context.Background())
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	return tok
}

func TestTokenIsCachedUntilShortlyBeforeExpiry(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := newSource(ts, c)

	first := mustToken(t, s)
	for range 10 {
		if tok := mustToken(t, s); tok != first {
			t.Fatalf("Token = %q, want the cached %q", tok, first)
		}
	}
	c.Advance(4*time.Minute - time.Nanosecond) // expires_in 300 s, replaced 60 s early
	if tok := mustToken(t, s); tok != first || ts.fetches.Load() != 1 {
		t.Fatalf("just before the refresh point: Token = %q after %d fetches; want %q after 1", tok, ts.fetches.Load(), first)
	}
	c.Advance(time.Nanosecond)
	if tok := mustToken(t, s); tok == first || ts.fetches.Load() != 2 {
		t.Fatalf("at the refresh point: Token = %q after %d fetches; want a new token after 2", tok, ts.fetches.Load())
	}
}

func TestShortLivedTokensAreReplacedAtHalfTheirLifetime(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t)
	ts.expiresIn("60") // some servers send a string
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := newSource(ts, c)
	first := mustToken(t, s)
	c.Advance(30*time.Second - time.Nanosecond)
	if mustToken(t, s) != first {
		t.Fatal("a 60 s token was replaced before 30 s")
	}
	c.Advance(time.Nanosecond)
	if mustToken(t, s) == first {
		t.Fatal("a 60 s token was not replaced at 30 s")
	}
}

func TestTokenWithoutExpiryIsKeptOneMinute(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t)
	ts.expiresIn(nil)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := newSource(ts, c)
	first := mustToken(t, s)
	c.Advance(30*time.Second - time.Nanosecond)
	if mustToken(t, s) != first {
		t.Fatal("a token without expires_in was replaced before 30 s")
	}
	c.Advance(30 * time.Second)
	if mustToken(t, s) == first {
		t.Fatal("a token without expires_in was kept beyond its assumed minute")
	}
}

func TestConcurrentCallersShareOneFetch(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t)
	ts.gate = make(chan struct{})
	s := newSource(ts, &clock{t: time.Unix(1_800_000_000, 0)})
	var wg sync.WaitGroup
	tokens := make([]string, 20)
	for i := range tokens {
		wg.Go(func() { tokens[i] = mustToken(t, s) })
	}
	time.Sleep(50 * time.Millisecond) // let them all wait on the one fetch
	close(ts.gate)
	wg.Wait()
	for _, tok := range tokens {
		if tok != tokens[0] {
			t.Fatalf("concurrent callers got %v, want one token", tokens)
		}
	}
	if n := ts.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 20 concurrent callers, want 1", n)
	}
}

func TestAFailedRefreshFallsBackToTheUnexpiredToken(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := newSource(ts, c)
	first := mustToken(t, s)
	ts.failing.Store(true)
	c.Advance(4*time.Minute + 30*time.Second) // due for refresh, not expired
	if tok := mustToken(t, s); tok != first {
		t.Fatalf("Token during an issuer outage = %q, want the still valid %q", tok, first)
	}
	c.Advance(30 * time.Second) // expired
	if _, err := s.Token(context.Background()); err == nil {
		t.Fatal("Token with an expired token and a failing issuer succeeded, want an error")
	}
}

func TestForgetDropsOnlyTheNamedToken(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t)
	s := newSource(ts, &clock{t: time.Unix(1_800_000_000, 0)})
	first := mustToken(t, s)
	s.Forget("some-older-token")
	if mustToken(t, s) != first {
		t.Fatal("Forget of another token dropped the cached one")
	}
	s.Forget(first)
	if mustToken(t, s) == first {
		t.Fatal("Forget did not drop the cached token")
	}
}

func TestWrongSecretIsAnError(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t)
	s := clientcreds.New(clientcreds.Config{TokenURL: ts.URL, ClientID: "relay", ClientSecret: "nope", Scopes: []string{"events:write"}})
	if _, err := s.Token(context.Background()); err == nil {
		t.Fatal("Token with a wrong secret succeeded")
	}
}

func TestAgainstTheDevIssuerWithDiscovery(t *testing.T) {
	t.Parallel()
	iss := shoptest.Issuer(t)
	tokenURL, err := clientcreds.TokenURL(context.Background(), nil, iss.URL())
	if err != nil {
		t.Fatal(err)
	}
	if tokenURL != iss.URL()+devissuer.TokenPath {
		t.Fatalf("TokenURL = %q, want %q", tokenURL, iss.URL()+devissuer.TokenPath)
	}
	s := clientcreds.New(clientcreds.Config{
		TokenURL: tokenURL, ClientID: devissuer.DemoRelayClient, ClientSecret: devissuer.DemoRelaySecret,
		Scopes: []string{"events:write"},
	})
	tok := mustToken(t, s)
	id, err := shoptest.Verifier(t, iss).Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("the issuer's verifier refuses the token: %v", err)
	}
	if !id.Service || !id.HasScope("events:write") || id.Subject != devissuer.DemoRelayClient {
		t.Fatalf("token identity = %+v; want the relay's service identity with events:write", id)
	}
}

func TestInterceptorSendsTheTokenAndForgetsItWhenRefused(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t)
	s := newSource(ts, &clock{t: time.Unix(1_800_000_000, 0)})
	var seen []string
	refuse := true
	call := connect.UnaryFunc(func(_ context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		seen = append(seen, req.Header().Get("Authorization"))
		if refuse {
			return nil, connect.NewError(connect.CodeUnauthenticated, nil)
		}
		return nil, nil
	})
	wrapped := s.Interceptor().WrapUnary(call)
	req := connect.NewRequest(&struct{}{})
	_, _ = wrapped(context.Background(), req)
	refuse = false
	_, _ = wrapped(context.Background(), connect.NewRequest(&struct{}{}))
	if len(seen) != 2 || seen[0] != "Bearer token-1" || seen[1] != "Bearer token-2" {
		t.Fatalf("Authorization headers = %q; want token-1, then (after Unauthenticated) token-2", seen)
	}
}
