// Package clientcreds gives a service its own access token: the OAuth 2.0
// client-credentials grant (RFC 6749 section 4.4) against the issuer's token
// endpoint, cached until shortly before it expires, and a Connect client
// interceptor that sends it as a bearer token.
package clientcreds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Defaults for Config.
const (
	// DefaultRefreshBefore is how long before its expiry a token is replaced.
	DefaultRefreshBefore = time.Minute
	// unknownLifetime is how long a token whose response says nothing about
	// its expiry is used.
	unknownLifetime = time.Minute
)

// Config configures a Source.
type Config struct {
	// TokenURL is the issuer's token endpoint (see TokenURL to discover it).
	TokenURL string
	// ClientID and ClientSecret authenticate the client (HTTP Basic, or the
	// form when the endpoint refuses Basic).
	ClientID, ClientSecret string
	// Scopes requested, e.g. "events:write"; none asks for the client's
	// default scopes.
	Scopes []string
	// HTTPClient calls the token endpoint; default a client with a 30 s
	// timeout.
	HTTPClient *http.Client
	// RefreshBefore is how long before expiry a cached token is replaced,
	// at most half the token's lifetime; default DefaultRefreshBefore.
	RefreshBefore time.Duration
	// Now is the clock that ages tokens; default time.Now.
	Now func() time.Time
}

// Source hands out the client's access token, fetching a new one only when
// there is none, the cached one is within RefreshBefore (or half its
// lifetime) of expiring, or it was forgotten. Concurrent callers share one
// fetch. Its methods are safe for concurrent use.
type Source struct {
	cfg   Config
	grant clientcredentials.Config
	lock  chan struct{} // held while fetching; a channel so waiting honors ctx

	mu      sync.Mutex
	token   string
	expiry  time.Time // when the token expires
	refresh time.Time // when to replace it
}

// New returns a Source for cfg. It fetches nothing until asked.
func New(cfg Config) *Source {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.RefreshBefore <= 0 {
		cfg.RefreshBefore = DefaultRefreshBefore
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Source{
		cfg: cfg,
		grant: clientcredentials.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
			TokenURL: cfg.TokenURL, Scopes: cfg.Scopes,
		},
		lock: make(chan struct{}, 1),
	}
}

// Token returns a token valid for at least a while: the cached one, or a
// fresh one from the token endpoint. If fetching fails while the cached
// token has not yet expired, the cached token is returned; otherwise the
// error (the endpoint's OAuth error, or the transport's) is.
func (s *Source) Token(ctx context.Context) (string, error) {
	if tok, ok := s.cached(false); ok {
		return tok, nil
	}
	select {
	case s.lock <- struct{}{}:
		defer func() { <-s.lock }()
	case <-ctx.Done():
		return "", ctx.Err()
	}
	// Another caller may have fetched while we waited.
	if tok, ok := s.cached(false); ok {
		return tok, nil
	}
	tok, err := s.fetch(ctx)
	if err != nil {
		if old, ok := s.cached(true); ok {
			return old, nil
		}
		return "", err
	}
	return tok, nil
}

// cached returns the cached token if it is not due for replacement, or
// (stale) merely not expired.
func (s *Source) cached(stale bool) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	limit := s.refresh
	if stale {
		limit = s.expiry
	}
	if s.token == "" || !now.Before(limit) {
		return "", false
	}
	return s.token, true
}

func (s *Source) fetch(ctx context.Context) (string, error) {
	start := s.cfg.Now()
	tok, err := s.grant.Token(context.WithValue(ctx, oauth2.HTTPClient, s.cfg.HTTPClient))
	if err != nil {
		return "", fmt.Errorf("client credentials from %s: %w", s.cfg.TokenURL, err)
	}
	lifetime := expiresIn(tok)
	if lifetime <= 0 {
		lifetime = unknownLifetime
	}
	margin := min(s.cfg.RefreshBefore, lifetime/2)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = tok.AccessToken
	s.expiry = start.Add(lifetime)
	s.refresh = s.expiry.Add(-margin)
	return s.token, nil
}

// expiresIn returns the token's lifetime from the response's expires_in
// (a JSON number, or a string as some servers send), 0 if absent.
func expiresIn(tok *oauth2.Token) time.Duration {
	var secs float64
	switch v := tok.Extra("expires_in").(type) {
	case float64:
		secs = v
	case int64:
		secs = float64(v)
	case string:
		secs, _ = strconv.ParseFloat(v, 64)
	}
	if secs <= 0 {
		return 0
	}
	return time.Duration(secs * float64(time.Second))
}

// Forget drops token from the cache if it is the cached one, so the next
// Token call fetches a new one: a receiver refused it (for example after the
// issuer rotated its keys or revoked the token).
func (s *Source) Forget(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == token {
		s.token = ""
	}
}

// Interceptor returns a Connect client interceptor that sends the source's
// token as "Authorization: Bearer" on every unary call and forgets it when
// the call fails with Unauthenticated. When no token can be had, the call
// fails with Unavailable without being sent.
func (s *Source) Interceptor() connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			tok, err := s.Token(ctx)
			if err != nil {
				return nil, connect.NewError(connect.CodeUnavailable, err)
			}
			req.Header().Set("Authorization", "Bearer "+tok)
			resp, err := next(ctx, req)
			if connect.CodeOf(err) == connect.CodeUnauthenticated {
				s.Forget(tok)
			}
			return resp, err
		}
	})
}

// TokenURL returns the token endpoint from the OpenID Connect discovery
// document of issuerURL, fetched with client (nil: http.DefaultClient).
func TokenURL(ctx context.Context, client *http.Client, issuerURL string) (string, error) {
	if client != nil {
		ctx = oidc.ClientContext(ctx, client)
	}
	p, err := oidc.NewProvider(ctx, issuerURL)
	if err != nil {
		return "", fmt.Errorf("discover the token endpoint of %s: %w", issuerURL, err)
	}
	u := p.Endpoint().TokenURL
	if u == "" {
		return "", errors.New("the discovery document of " + issuerURL + " names no token_endpoint")
	}
	return u, nil
}
