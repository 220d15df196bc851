// Package auth verifies OAuth 2.0 access tokens (RFC 9068 JWTs from one
// OIDC issuer) and guards Connect procedures with per-procedure rules.
//
// A Verifier accepts a token only if all hold: it is a compact JWS signed
// with an asymmetric algorithm by a key in the issuer's JWKS; its JOSE "typ"
// is allowed (default at+jwt or JWT; never logout+jwt); iss is the issuer;
// aud contains the API audience; its claims are valid UTF-8; exp and iat
// are JSON numbers, exp in the future and nbf (if present) not (both strict,
// no leeway), iat at most IssuedAtLeeway (60 s) ahead; sub, and client_id
// (or azp) when present, are 1 to 255 bytes without control characters; and
// it is not an ID token or logout token in disguise (no nonce, at_hash,
// c_hash or events claim).
//
// Middleware puts the resulting Identity into the request context and
// refuses requests that the Rules do not allow, with protocol-correct
// Connect, gRPC or gRPC-Web errors.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// maxTokenBytes bounds the work an unauthenticated caller can cause.
const maxTokenBytes = 16 << 10

var (
	// ErrInvalidToken is wrapped by every Verify error caused by the token
	// itself. The wrapped detail is for logs, never for clients.
	ErrInvalidToken = errors.New("auth: invalid access token")
	// ErrKeysUnavailable is wrapped by Verify errors caused by failing to
	// fetch the issuer's JWKS: the token could not be checked; retry later.
	ErrKeysUnavailable = errors.New("auth: issuer signing keys unavailable")
)

// Verifier verifies access tokens. It is safe for concurrent use.
type Verifier struct {
	oidc         *oidc.IDTokenVerifier
	keys         *keySet
	cache        *tokenCache // nil: no caching
	allowedTypes map[string]bool
	rolesPath    []string
	rolesClaim   string
	serviceScope string
	audience     string
	now          func() time.Time
}

// NewVerifier reads the issuer's discovery document and JWKS (both must be
// reachable now) and returns a Verifier. It fails on an invalid Config, a
// discovery document whose issuer differs from IssuerURL, or an unusable
// JWKS.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	allowed, err := allowedTypeSet(cfg.AllowedTypes)
	if err != nil {
		return nil, err
	}
	keys, err := discoverKeys(ctx, cfg)
	if err != nil {
		return nil, err
	}
	algs := make([]string, len(asymmetricAlgs))
	for i, a := range asymmetricAlgs {
		algs[i] = string(a)
	}
	return &Verifier{
		oidc: oidc.NewVerifier(cfg.IssuerURL, keys, &oidc.Config{
			ClientID:             cfg.Audience, // go-oidc checks aud contains it
			SupportedSigningAlgs: algs,
			Now:                  cfg.Now,
		}),
		keys:         keys,
		cache:        newTokenCache(cfg.CacheSize),
		allowedTypes: allowed,
		rolesClaim:   cfg.RolesClaim,
		rolesPath:    strings.Split(cfg.RolesClaim, "."),
		serviceScope: cfg.ServiceScope,
		audience:     cfg.Audience,
		now:          cfg.Now,
	}, nil
}

// discoverKeys reads the issuer's discovery document for its jwks_uri and
// fetches the key set once.
func discoverKeys(ctx context.Context, cfg Config) (*keySet, error) {
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, cfg.HTTPClient), cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("auth: OIDC discovery for %s: %w", cfg.IssuerURL, err)
	}
	var meta struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := provider.Claims(&meta); err != nil || meta.JWKSURL == "" {
		return nil, fmt.Errorf("auth: discovery for %s has no jwks_uri", cfg.IssuerURL)
	}
	keys := &keySet{
		url:         meta.JWKSURL,
		client:      cfg.HTTPClient,
		now:         cfg.Now,
		minInterval: cfg.MinRefreshInterval,
		every:       cfg.RefreshInterval,
	}
	if _, err := keys.refresh(ctx); err != nil {
		return nil, fmt.Errorf("auth: initial JWKS fetch: %w", err)
	}
	return keys, nil
}

// Audience is the API audience tokens must carry.
func (v *Verifier) Audience() string { return v.audience }

// Verify checks raw (the bearer token, without "Bearer ") and returns who
// it identifies. Errors wrap ErrInvalidToken or ErrKeysUnavailable (or are
// ctx's error); their text is for logs only.
//
// A token verified before is answered from the cache until it expires,
// unless the key set has changed since. The returned Identity may be shared
// with other calls: never modify it.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Identity, error) {
	if len(raw) > maxTokenBytes {
		return nil, invalid("token longer than %d bytes", maxTokenBytes)
	}
	gen := v.keys.refreshIfDue(ctx)
	sum := sha256.Sum256([]byte(raw))
	if id, ok := v.cache.get(sum, gen, v.now()); ok {
		return id, nil
	}
	id, expiry, err := v.verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	v.cache.put(sum, gen, id, expiry)
	return id, nil
}

// verify checks raw in full and returns the identity and the token's
// expiry.
func (v *Verifier) verify(ctx context.Context, raw string) (*Identity, time.Time, error) {
	jws, err := v.checkHeader(raw)
	if err != nil {
		return nil, time.Time{}, err
	}
	tok, err := v.checkSignature(ctx, raw)
	if err != nil {
		return nil, time.Time{}, err
	}
	claims, err := v.accessTokenClaims(jws, tok)
	if err != nil {
		return nil, time.Time{}, err
	}
	id, err := v.identity(tok.Subject, claims)
	if err != nil {
		return nil, time.Time{}, err
	}
	return id, tok.Expiry, nil
}

// checkHeader parses raw as a compact JWS with one signature by an
// asymmetric algorithm and an allowed typ. The signature is not checked yet.
func (v *Verifier) checkHeader(raw string) (*jose.JSONWebSignature, error) {
	jws, err := jose.ParseSignedCompact(raw, asymmetricAlgs)
	if err != nil {
		return nil, invalid("malformed token or disallowed alg: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid("want exactly one signature")
	}
	typ, err := headerType(jws.Signatures[0].Header)
	if err != nil {
		return nil, invalid("%v", err)
	}
	if !v.allowedTypes[typ] {
		return nil, invalid("typ %q not allowed", typ)
	}
	return jws, nil
}

// checkSignature has go-oidc check the signature, iss, aud and exp. When
// the key set could not be fetched, the error wraps ErrKeysUnavailable
// rather than ErrInvalidToken.
func (v *Verifier) checkSignature(ctx context.Context, raw string) (*oidc.IDToken, error) {
	var keyErr error
	tok, err := v.oidc.Verify(context.WithValue(ctx, keyErrSlot{}, &keyErr), raw)
	if err != nil {
		switch {
		case errors.Is(keyErr, ErrKeysUnavailable):
			return nil, keyErr
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		return nil, invalid("%v", err)
	}
	return tok, nil
}

// accessTokenClaims decodes the claims of a token whose signature holds
// and checks what makes it an access token: valid UTF-8, strict times, no
// ID- or logout-token claims, a well-formed sub.
func (v *Verifier) accessTokenClaims(jws *jose.JSONWebSignature, tok *oidc.IDToken) (map[string]json.RawMessage, error) {
	if !utf8.Valid(jws.UnsafePayloadWithoutVerification()) { // the payload oidc just verified
		return nil, invalid("claims are not valid UTF-8")
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return nil, invalid("claims: %v", err)
	}
	if err := v.checkTimes(claims); err != nil {
		return nil, invalid("%v", err)
	}
	for _, name := range notAccessTokenClaims {
		if _, ok := claims[name]; ok {
			return nil, invalid("carries %q: an ID or logout token, not an access token", name)
		}
	}
	if err := checkIdentifier(tok.Subject); err != nil {
		return nil, invalid("sub: %v", err)
	}
	return claims, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, fmt.Sprintf(format, args...))
}
