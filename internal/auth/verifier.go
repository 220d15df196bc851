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
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

const (
	// DefaultAudience is the API audience tokens must carry when
	// Config.Audience is empty.
	DefaultAudience = "shop-api"
	// DefaultRolesClaim is where roles are read when Config.RolesClaim is
	// empty.
	DefaultRolesClaim = "roles"
	// DefaultServiceScope is the scope that makes a client-credentials token
	// a service token when Config.ServiceScope is empty.
	DefaultServiceScope = "events:write"
	// DefaultMinRefreshInterval is the least time between two JWKS fetches
	// when Config.MinRefreshInterval is zero.
	DefaultMinRefreshInterval = 30 * time.Second
	// DefaultRefreshInterval is how often the JWKS is refetched on schedule
	// when Config.RefreshInterval is zero.
	DefaultRefreshInterval = 5 * time.Minute
	// RoleAdmin is the role that Admin procedures require.
	RoleAdmin = "admin"

	// IssuedAtLeeway is how far in the future a token's iat may be, for
	// clocks a little ahead of ours; exp and nbf get no leeway.
	IssuedAtLeeway = 60 * time.Second
	// MaxIdentifierBytes bounds a token's sub and client id.
	MaxIdentifierBytes = 255

	// maxTokenBytes bounds the work an unauthenticated caller can cause.
	maxTokenBytes = 16 << 10
	// maxNumericDate (year 5138) keeps time conversions of exp, iat and nbf
	// from overflowing.
	maxNumericDate = 1e11
)

// DefaultAllowedTypes are the JOSE "typ" values accepted when
// Config.AllowedTypes is empty.
var DefaultAllowedTypes = []string{"at+jwt", "JWT"}

var (
	// ErrInvalidToken is wrapped by every Verify error caused by the token
	// itself. The wrapped detail is for logs, never for clients.
	ErrInvalidToken = errors.New("auth: invalid access token")
	// ErrKeysUnavailable is wrapped by Verify errors caused by failing to
	// fetch the issuer's JWKS: the token could not be checked; retry later.
	ErrKeysUnavailable = errors.New("auth: issuer signing keys unavailable")
)

// Config configures a Verifier. Only IssuerURL is required.
type Config struct {
	// IssuerURL is the issuer identifier; discovery is read from
	// IssuerURL + "/.well-known/openid-configuration" and its "issuer" must
	// equal IssuerURL exactly.
	IssuerURL string
	// Audience is the API audience that aud must contain; default
	// DefaultAudience.
	Audience string
	// AllowedTypes lists accepted JOSE "typ" header values, compared
	// case-insensitively with any "application/" prefix removed (so
	// "application/at+jwt" is "at+jwt"). An empty string entry admits tokens
	// without typ. Default DefaultAllowedTypes. "logout+jwt" is refused.
	AllowedTypes []string
	// RolesClaim is the claim holding the roles (an array of strings, or one
	// string): a top-level name, or a dotted path into nested objects such
	// as "realm_access.roles". A top-level claim whose name is the whole
	// string wins over the path. Default DefaultRolesClaim.
	RolesClaim string
	// ServiceScope is the scope a service token must have; default
	// DefaultServiceScope.
	ServiceScope string
	// MinRefreshInterval is the least time between JWKS fetches triggered by
	// unknown key ids; default DefaultMinRefreshInterval.
	MinRefreshInterval time.Duration
	// RefreshInterval is how often the JWKS is refetched on schedule, so a
	// key the issuer stops publishing stops verifying within about this
	// long; an issuer's "Cache-Control: max-age" shortens it. Between 1
	// minute and 1 hour (max-age is clamped to the same bounds); default
	// DefaultRefreshInterval. The refetch starts when the first token is
	// verified after it is due, which waits for it at most 2 s; if it fails,
	// the cached keys stay in use and it is retried after
	// MinRefreshInterval.
	RefreshInterval time.Duration
	// CacheSize bounds how many verified tokens are remembered (by hash,
	// until they expire, forgotten whenever the key set changes) so a token
	// sent again is not verified again; default DefaultCacheSize, negative
	// disables the cache.
	CacheSize int
	// HTTPClient fetches discovery and the JWKS; default a client with a
	// 10-second timeout.
	HTTPClient *http.Client
	// Now is the clock for exp/nbf checks and the refresh interval; default
	// time.Now.
	Now func() time.Time
}

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
	if cfg.IssuerURL == "" {
		return nil, errors.New("auth: IssuerURL is required")
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if len(cfg.AllowedTypes) == 0 {
		cfg.AllowedTypes = DefaultAllowedTypes
	}
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = DefaultRolesClaim
	}
	if cfg.ServiceScope == "" {
		cfg.ServiceScope = DefaultServiceScope
	}
	if cfg.MinRefreshInterval == 0 {
		cfg.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if cfg.MinRefreshInterval < 0 {
		return nil, errors.New("auth: MinRefreshInterval must be positive")
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.RefreshInterval < minScheduledRefresh || cfg.RefreshInterval > maxScheduledRefresh {
		return nil, fmt.Errorf("auth: RefreshInterval %v is not between %v and %v", cfg.RefreshInterval, minScheduledRefresh, maxScheduledRefresh)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: fetchTimeout}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	allowed := make(map[string]bool, len(cfg.AllowedTypes))
	for _, t := range cfg.AllowedTypes {
		t = normalizeType(t)
		if t == "logout+jwt" {
			return nil, errors.New("auth: logout+jwt cannot be an allowed access-token type")
		}
		allowed[t] = true
	}

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
	var never time.Time
	jws, err := jose.ParseSignedCompact(raw, asymmetricAlgs)
	if err != nil {
		return nil, never, invalid("malformed token or disallowed alg: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, never, invalid("want exactly one signature")
	}
	typ, err := headerType(jws.Signatures[0].Header)
	if err != nil {
		return nil, never, invalid("%v", err)
	}
	if !v.allowedTypes[typ] {
		return nil, never, invalid("typ %q not allowed", typ)
	}

	var keyErr error
	tok, err := v.oidc.Verify(context.WithValue(ctx, keyErrSlot{}, &keyErr), raw)
	if err != nil {
		switch {
		case errors.Is(keyErr, ErrKeysUnavailable):
			return nil, never, keyErr
		case ctx.Err() != nil:
			return nil, never, ctx.Err()
		}
		return nil, never, invalid("%v", err)
	}

	if !utf8.Valid(jws.UnsafePayloadWithoutVerification()) { // the payload oidc just verified
		return nil, never, invalid("claims are not valid UTF-8")
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return nil, never, invalid("claims: %v", err)
	}
	if err := v.checkTimes(claims); err != nil {
		return nil, never, invalid("%v", err)
	}
	for _, name := range []string{"nonce", "at_hash", "c_hash", "events"} {
		if _, ok := claims[name]; ok {
			return nil, never, invalid("carries %q: an ID or logout token, not an access token", name)
		}
	}
	if err := checkIdentifier(tok.Subject); err != nil {
		return nil, never, invalid("sub: %v", err)
	}

	id := &Identity{Subject: tok.Subject}
	if id.ClientID, err = stringClaim(claims, "client_id"); err == nil && id.ClientID == "" {
		id.ClientID, err = stringClaim(claims, "azp")
	}
	if err != nil {
		return nil, never, invalid("%v", err)
	}
	if id.ClientID != "" {
		if err := checkIdentifier(id.ClientID); err != nil {
			return nil, never, invalid("client id: %v", err)
		}
	}
	if id.Scopes, err = stringsClaim(claims["scope"], true); err != nil {
		return nil, never, invalid("scope: %v", err)
	}
	roles, err := v.lookupRoles(claims)
	if err != nil {
		return nil, never, invalid("%s: %v", v.rolesClaim, err)
	}
	id.Roles = roles
	id.Service = id.ClientID != "" && id.Subject == id.ClientID
	return id, tok.Expiry, nil
}

// checkTimes checks what go-oidc leaves lax: exp and iat must be JSON
// numbers (go-oidc also reads numeric strings), iat is required and at most
// IssuedAtLeeway ahead, and nbf (optional) is a number not after now.
func (v *Verifier) checkTimes(claims map[string]json.RawMessage) error {
	now := v.now()
	if _, err := numericDate(claims, "exp"); err != nil {
		return err
	}
	iat, err := numericDate(claims, "iat")
	if err != nil {
		return err
	}
	if iat.After(now.Add(IssuedAtLeeway)) {
		return fmt.Errorf("issued in the future (%v)", iat.UTC())
	}
	if _, ok := claims["nbf"]; ok {
		nbf, err := numericDate(claims, "nbf")
		if err != nil {
			return err
		}
		if now.Before(nbf) {
			return fmt.Errorf("not valid before %v", nbf.UTC())
		}
	}
	return nil
}

// numericDate reads a required RFC 7519 NumericDate: a JSON number of
// seconds since the epoch, possibly fractional.
func numericDate(claims map[string]json.RawMessage, name string) (time.Time, error) {
	raw, ok := claims[name]
	if !ok {
		return time.Time{}, fmt.Errorf("no %s", name)
	}
	var f float64
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) || json.Unmarshal(raw, &f) != nil {
		return time.Time{}, fmt.Errorf("%s is not a number", name)
	}
	if f > maxNumericDate || f < -maxNumericDate {
		return time.Time{}, fmt.Errorf("%s out of range", name)
	}
	return time.Unix(0, int64(f*float64(time.Second))), nil
}

// checkIdentifier checks a subject or client id like any other input: 1 to
// MaxIdentifierBytes bytes of valid UTF-8 without control characters (NUL
// included) or U+FFFD (what a JSON decoder makes of invalid escapes).
func checkIdentifier(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxIdentifierBytes:
		return fmt.Errorf("longer than %d bytes", MaxIdentifierBytes)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("contains %U", r)
		}
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, fmt.Sprintf(format, args...))
}

// normalizeType lower-cases a typ value and drops an "application/" prefix
// (RFC 7515 section 4.1.9).
func normalizeType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	return strings.TrimPrefix(t, "application/")
}

func headerType(h jose.Header) (string, error) {
	v, ok := h.ExtraHeaders[jose.HeaderType]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", errors.New("typ is not a string")
	}
	return normalizeType(s), nil
}

func stringClaim(claims map[string]json.RawMessage, name string) (string, error) {
	raw, ok := claims[name]
	if !ok {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s is not a string", name)
	}
	return s, nil
}

// stringsClaim reads an array of strings, or one string (split on spaces
// when split is set, as for "scope"). Absent or null is nil.
func stringsClaim(raw json.RawMessage, split bool) ([]string, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if split {
			return strings.Fields(s), nil
		}
		if s == "" {
			return nil, nil
		}
		return []string{s}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("want a string or an array of strings")
	}
	return list, nil
}

// lookupRoles finds the roles claim: the whole configured name as a
// top-level claim first (names like "https://example.com/roles" contain
// dots), else the dotted path. A missing claim or path means no roles; a
// claim of the wrong type is an error.
func (v *Verifier) lookupRoles(claims map[string]json.RawMessage) ([]string, error) {
	if raw, ok := claims[v.rolesClaim]; ok {
		return stringsClaim(raw, false)
	}
	if len(v.rolesPath) < 2 {
		return nil, nil
	}
	level := claims
	for i, name := range v.rolesPath {
		raw, ok := level[name]
		if !ok {
			return nil, nil
		}
		if i == len(v.rolesPath)-1 {
			return stringsClaim(raw, false)
		}
		level = nil
		if err := json.Unmarshal(raw, &level); err != nil {
			return nil, fmt.Errorf("%s is not an object", strings.Join(v.rolesPath[:i+1], "."))
		}
	}
	return nil, nil
}
