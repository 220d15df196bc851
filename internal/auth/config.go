package auth

import (
	"errors"
	"fmt"
	"net/http"
	"time"
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
)

// DefaultAllowedTypes are the JOSE "typ" values accepted when
// Config.AllowedTypes is empty.
var DefaultAllowedTypes = []string{"at+jwt", "JWT"}

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

// withDefaults fills in every zero field of cfg and checks the result.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.IssuerURL == "" {
		return cfg, errors.New("auth: IssuerURL is required")
	}
	setDefault(&cfg.Audience, DefaultAudience)
	setDefault(&cfg.RolesClaim, DefaultRolesClaim)
	setDefault(&cfg.ServiceScope, DefaultServiceScope)
	setDefault(&cfg.MinRefreshInterval, DefaultMinRefreshInterval)
	setDefault(&cfg.RefreshInterval, DefaultRefreshInterval)
	setDefault(&cfg.CacheSize, DefaultCacheSize)
	if len(cfg.AllowedTypes) == 0 {
		cfg.AllowedTypes = DefaultAllowedTypes
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: fetchTimeout}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MinRefreshInterval < 0 {
		return cfg, errors.New("auth: MinRefreshInterval must be positive")
	}
	if cfg.RefreshInterval < minScheduledRefresh || cfg.RefreshInterval > maxScheduledRefresh {
		return cfg, fmt.Errorf("auth: RefreshInterval %v is not between %v and %v", cfg.RefreshInterval, minScheduledRefresh, maxScheduledRefresh)
	}
	return cfg, nil
}

// setDefault sets *field to def if it is the zero value.
func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// allowedTypeSet normalizes the configured typ values (see normalizeType)
// and refuses logout+jwt.
func allowedTypeSet(types []string) (map[string]bool, error) {
	allowed := make(map[string]bool, len(types))
	for _, t := range types {
		t = normalizeType(t)
		if t == "logout+jwt" {
			return nil, errors.New("auth: logout+jwt cannot be an allowed access-token type")
		}
		allowed[t] = true
	}
	return allowed, nil
}
