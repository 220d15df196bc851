package productclient

import (
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/cenkalti/backoff/v4"
)

// Defaults for the zero fields of Config.
const (
	DefaultCallTimeout     = 500 * time.Millisecond
	DefaultRetries         = 2
	DefaultTTL             = 30 * time.Second
	DefaultMaxStale        = time.Hour
	DefaultMaxEntries      = 100_000
	DefaultBreakerFailures = 5
	DefaultBreakerOpen     = 500 * time.Millisecond
	// DefaultBreakerOpenMax keeps probes at least once a second: one call a
	// second per replica costs productsvc nothing, and a longer wait would
	// keep cart writes failing for that long after productsvc is back.
	DefaultBreakerOpenMax = time.Second
)

// Config configures a Client; zero fields take the defaults.
type Config struct {
	// BaseURL is productsvc's base URL, e.g. "http://productsvc:8081", or
	// several, comma-separated (one per replica): each attempt of a call
	// goes to the next one that has not failed within the last second.
	// Required.
	BaseURL string
	// HTTPClient carries the calls; default a pooled HTTP/1.1 client.
	HTTPClient connect.HTTPClient
	// CallTimeout is the deadline of each call (attempt). Default 500 ms.
	CallTimeout time.Duration
	// Retries is how many times a call that failed with Unavailable,
	// DeadlineExceeded or a transport error is retried, as long as the
	// caller's deadline allows. Default 2; negative means never.
	Retries int
	// Backoff returns the wait policy between attempts; default
	// exponential from 50 ms to 250 ms with jitter.
	Backoff func() backoff.BackOff
	// TTL is how long an entry is served without asking productsvc.
	// Default 30 s.
	TTL time.Duration
	// MaxStale is how long an entry is kept for answers while productsvc
	// cannot be reached. Default 1 h.
	MaxStale time.Duration
	// MaxEntries bounds the cache (each product costs 1) and the
	// version high-water marks. Default 100 000.
	MaxEntries int64
	// BreakerFailures is how many consecutive failed calls open the
	// breaker. Default 5.
	BreakerFailures uint32
	// BreakerOpen is how long the breaker stays open before letting one
	// probe call through (half-open); each failed probe doubles it, up to
	// BreakerOpenMax, and a successful one resets it. Default 500 ms.
	BreakerOpen time.Duration
	// BreakerOpenMax bounds the open period. Default 1 s.
	BreakerOpenMax time.Duration
	// BreakerNow is the breaker's clock; default time.Now.
	BreakerNow func() time.Time
	// Now is the clock deciding whether an entry is fresh; default
	// time.Now.
	Now func() time.Time
	// Logger receives breaker state changes and, at most once per 10 s,
	// that productsvc cannot be reached, with the cause; default discard.
	Logger *slog.Logger
	// ClientOptions are added to the Connect client's options (telemetry:
	// traces, which pass the request's traceparent on, and call metrics).
	ClientOptions []connect.ClientOption
}

// withDefaults returns cfg with each zero field set to its default.
func (cfg Config) withDefaults() Config {
	if cfg.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		cfg.HTTPClient = &http.Client{Transport: t}
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.Backoff == nil {
		cfg.Backoff = defaultBackoff
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxStale < cfg.TTL {
		cfg.MaxStale = max(DefaultMaxStale, cfg.TTL)
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.BreakerFailures == 0 {
		cfg.BreakerFailures = DefaultBreakerFailures
	}
	if cfg.BreakerOpen <= 0 {
		cfg.BreakerOpen = DefaultBreakerOpen
	}
	if cfg.BreakerOpenMax <= 0 {
		cfg.BreakerOpenMax = max(DefaultBreakerOpenMax, cfg.BreakerOpen)
	}
	if cfg.BreakerNow == nil {
		cfg.BreakerNow = time.Now
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// defaultBackoff waits exponentially from 50 ms to 250 ms, with jitter.
func defaultBackoff() backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(50*time.Millisecond),
		backoff.WithMaxInterval(250*time.Millisecond),
		backoff.WithMaxElapsedTime(0),
	)
}
