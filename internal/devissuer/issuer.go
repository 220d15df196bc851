// Package devissuer is a small OpenID Connect issuer for tests and the local
// development stack. It is NOT for production: keys are generated fresh at
// every start and live in memory (unless Config.KeyFile keeps them in a
// file), passwords and client secrets are compared from plain
// configuration, and it listens on loopback addresses only.
//
// It publishes discovery and a JWKS, issues RFC 9068 access tokens from its
// token endpoint (authorization code with PKCE for the web client, password
// and client-credentials grants), shows a login form for the
// authorization-code flow, and mints
// arbitrary and deliberately broken tokens so that verifiers can be tested
// against the real thing over real HTTP.
package devissuer

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
)

const (
	// DefaultAudience is the API audience put into access tokens when
	// Config.Audience is empty.
	DefaultAudience = "shop-api"
	// DefaultTokenTTL is the access-token lifetime when Config.TokenTTL is zero.
	DefaultTokenTTL = 15 * time.Minute
	// WebClientID is the public client (the web shop) that user tokens are
	// issued to; it has no secret and is the client_id of every user token.
	WebClientID = "shop-web"
	// UserScope is the scope of every user access token.
	UserScope = "openid profile email"

	rsaKeyBits = 2048
)

// User is a person who can log in with the password grant.
type User struct {
	// Password is compared in constant time; it must not be empty.
	Password string
	// Roles go into the token's "roles" claim (e.g. "admin").
	Roles []string
	// Email, if set, goes into the token's "email" claim.
	Email string
}

// Client is a confidential client that can use the client-credentials grant.
// Its tokens are service tokens: sub == client_id.
type Client struct {
	// Secret is compared in constant time; it must not be empty.
	Secret string
	// Scopes the client may request; all of them when it requests none
	// (e.g. "events:write").
	Scopes []string
	// Roles, if any, go into the token's "roles" claim.
	Roles []string
}

// Config configures an Issuer. The zero value is usable (no users, no
// clients).
type Config struct {
	// Audience is the API audience (aud) of access tokens; default
	// DefaultAudience.
	Audience string
	// Users by username.
	Users map[string]User
	// Clients by client_id. WebClientID is reserved for the public client.
	Clients map[string]Client
	// TokenTTL is the lifetime of issued tokens; default DefaultTokenTTL.
	TokenTTL time.Duration
	// JWKSMaxAge, when positive, is sent as "Cache-Control: max-age" (whole
	// seconds) with the JWKS, telling verifiers how long they may cache it.
	JWKSMaxAge time.Duration
	// Now is the issuer's clock; default time.Now.
	Now func() time.Time
	// Logger receives the development-only notice on start; default
	// slog.Default().
	Logger *slog.Logger
	// KeyFile, when set, keeps the signing keys (private, as a JWK set) so
	// tokens outlive a restart: New reads them from it, or generates them
	// and writes it (mode 0600) when it does not exist; RotateKeys and
	// RemoveOldKeys write it again. Empty: fresh keys in memory only.
	KeyFile string
}

// Key selects one of the issuer's signing keys for Mint.
type Key int

const (
	// KeyCurrent is the published key that signs issued tokens.
	KeyCurrent Key = iota
	// KeyNext is published ahead of use and becomes current at RotateKeys.
	KeyNext
	// KeyUnpublished is a key that is never published: tokens it signs carry
	// a kid no verifier can know.
	KeyUnpublished
)

// Issuer is an in-memory OIDC issuer. Its methods are safe for concurrent use.
type Issuer struct {
	audience string
	users    map[string]User
	clients  map[string]Client
	ttl      time.Duration
	jwksAge  time.Duration
	now      func() time.Time
	logger   *slog.Logger
	keyFile  string

	mu      sync.Mutex
	url     string // set once when bound to a listener
	srv     *http.Server
	current *signingKey
	next    *signingKey
	retired []*signingKey

	unpublished func() (*signingKey, error) // generated on first use

	codesMu sync.Mutex
	codes   map[string]authCode // pending authorization codes
}

type signingKey struct {
	id   string
	priv *rsa.PrivateKey
}

// New returns an issuer with two freshly generated RSA keys (current and
// next). It does not listen: see Start and Serve. It fails on an invalid
// configuration (empty password or secret, a client named WebClientID,
// negative TTL).
func New(cfg Config) (*Issuer, error) {
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.TokenTTL < 0 {
		return nil, errors.New("devissuer: TokenTTL must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for name, u := range cfg.Users {
		if name == "" || u.Password == "" {
			return nil, fmt.Errorf("devissuer: user %q needs a name and a password", name)
		}
	}
	for id, c := range cfg.Clients {
		if id == "" || c.Secret == "" {
			return nil, fmt.Errorf("devissuer: client %q needs an id and a secret", id)
		}
		if id == WebClientID {
			return nil, fmt.Errorf("devissuer: client id %q is reserved for the public web client", id)
		}
	}
	var current, next *signingKey
	var retired []*signingKey
	var err error
	if cfg.KeyFile != "" {
		current, next, retired, err = loadOrCreateKeys(cfg.KeyFile)
	} else if current, err = newSigningKey(); err == nil {
		next, err = newSigningKey()
	}
	if err != nil {
		return nil, err
	}
	return &Issuer{
		audience: cfg.Audience,
		users:    cloneUsers(cfg.Users),
		clients:  cloneClients(cfg.Clients),
		ttl:      cfg.TokenTTL,
		jwksAge:  cfg.JWKSMaxAge,
		now:      cfg.Now,
		logger:   cfg.Logger,
		current:  current,
		next:     next,
		retired:  retired,
		keyFile:  cfg.KeyFile,

		unpublished: sync.OnceValues(newSigningKey),
	}, nil
}

func cloneUsers(in map[string]User) map[string]User {
	out := maps.Clone(in)
	for k, u := range out {
		u.Roles = slices.Clone(u.Roles)
		out[k] = u
	}
	return out
}

func cloneClients(in map[string]Client) map[string]Client {
	out := maps.Clone(in)
	for k, c := range out {
		c.Scopes = slices.Clone(c.Scopes)
		c.Roles = slices.Clone(c.Roles)
		out[k] = c
	}
	return out
}

func newSigningKey() (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
	if err != nil {
		return nil, fmt.Errorf("devissuer: generate RSA key: %w", err)
	}
	return signingKeyOf(priv)
}

// URL is the issuer identifier (iss), "http://127.0.0.1:<port>", or "" before
// the issuer is bound to a listener by Start or Serve.
func (i *Issuer) URL() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.url
}

// Audience is the API audience of the access tokens this issuer mints.
func (i *Issuer) Audience() string { return i.audience }

// Subject is the stable subject (sub) of a user: a UUID derived from the
// username, the same across restarts and issuers.
func Subject(username string) string {
	return uuid.NewSHA1(subjectNamespace, []byte(username)).String()
}

var subjectNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/decoupledshop/shop/internal/devissuer/users"))

// RotateKeys makes the next key current (it signs from now on), keeps the
// previous current key published as retired so tokens it signed still
// verify, and generates a new next key, published at once. With a key file,
// it fails if the file cannot be written, and the keys stay as they were.
func (i *Issuer) RotateKeys() error {
	fresh, err := newSigningKey()
	if err != nil {
		return err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	retired := append(slices.Clip(i.retired), i.current)
	if i.keyFile != "" {
		if err := writeKeys(i.keyFile, i.next, fresh, retired); err != nil {
			return err
		}
	}
	i.retired = retired
	i.current, i.next = i.next, fresh
	return nil
}

// RemoveOldKeys unpublishes every retired key: tokens they signed no longer
// verify once a verifier refetches the JWKS. With a key file, a failure to
// write it is logged (the keys would come back at the next start).
func (i *Issuer) RemoveOldKeys() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.retired = nil
	if i.keyFile != "" {
		if err := writeKeys(i.keyFile, i.current, i.next, nil); err != nil {
			i.logger.Warn("retired keys removed in memory but not from the key file", "error", err.Error())
		}
	}
}

// KeyID returns the kid of the selected key (generating the unpublished key
// on first use).
func (i *Issuer) KeyID(k Key) (string, error) {
	key, err := i.key(k)
	if err != nil {
		return "", err
	}
	return key.id, nil
}

func (i *Issuer) key(k Key) (*signingKey, error) {
	if k == KeyUnpublished {
		return i.unpublished()
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	switch k {
	case KeyCurrent:
		return i.current, nil
	case KeyNext:
		return i.next, nil
	}
	return nil, fmt.Errorf("devissuer: unknown key %d", k)
}

// JWKS returns the published public keys: current, next and the retired
// ones not yet removed.
func (i *Issuer) JWKS() jose.JSONWebKeySet {
	i.mu.Lock()
	keys := append([]*signingKey{i.current, i.next}, i.retired...)
	i.mu.Unlock()
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{
			Key:       &k.priv.PublicKey,
			KeyID:     k.id,
			Algorithm: string(jose.RS256),
			Use:       "sig",
		})
	}
	return set
}
