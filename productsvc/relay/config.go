package relay

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/decoupledshop/shop/internal/clientcreds"
)

// Defaults for Config.
const (
	DefaultMaxAttempts   = 100
	DefaultMaxAge        = 24 * time.Hour
	DefaultLease         = 3 * time.Second
	DefaultCallTimeout   = 10 * time.Second
	DefaultLanes         = 4
	DefaultProbeInterval = time.Second
	DefaultPollInterval  = 5 * time.Second
	DefaultMaxBatch      = 256
	DefaultMaxBatchBytes = 512 << 10
)

// Subscriber is a receiver of the catalog's events.
type Subscriber struct {
	// Name identifies the subscriber's outbox rows and dead letters.
	Name string
	// URL is the base URL of its EventSinkService ("http://cartsvc:8082").
	URL string
}

var subscriberName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// ParseSubscribers parses a comma-separated list of name=url pairs
// ("cartsvc=http://cartsvc:8082"); an empty string is no subscriber. Names
// are 1 to 63 lowercase letters, digits, '_' and '-', starting with a
// letter, and unique; URLs are absolute http or https URLs.
func ParseSubscribers(s string) ([]Subscriber, error) {
	var subs []Subscriber
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, raw, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("subscriber %q: want name=url", part)
		}
		if !subscriberName.MatchString(name) {
			return nil, fmt.Errorf("subscriber %q: the name must be lowercase letters, digits, '_' or '-', starting with a letter", name)
		}
		if seen[name] {
			return nil, fmt.Errorf("subscriber %q: named twice", name)
		}
		seen[name] = true
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("subscriber %q: %q is not an http or https URL", name, raw)
		}
		subs = append(subs, Subscriber{Name: name, URL: strings.TrimSuffix(raw, "/")})
	}
	return subs, nil
}

// Names returns the subscribers' names, in order.
func Names(subs []Subscriber) []string {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.Name
	}
	return names
}

// Config configures a Relay. Zero fields take their defaults.
type Config struct {
	// Subscribers to deliver to; rows of other subscribers are left alone.
	Subscribers []Subscriber
	// Tokens supplies the relay's access token (client credentials with the
	// events:write scope). Required.
	Tokens *clientcreds.Source
	// ListenURL is the direct database URL (no transaction-mode pooler) to
	// LISTEN on; empty relies on polling and Notifier alone.
	ListenURL string
	// Notifier, if set, wakes the relay in-process when this process
	// commits events (the catalog's Notifier).
	Notifier *Notifier
	// MaxAttempts is how many attempts an event gets before it is
	// dead-lettered; default DefaultMaxAttempts.
	MaxAttempts int
	// MaxAge is how long after it was queued an event that fails is still
	// retried; default DefaultMaxAge.
	MaxAge time.Duration
	// Lease is how long a claim holds its rows without being renewed;
	// default DefaultLease. A relay renews its claims' leases every Lease/3
	// while it delivers them, so a relay that dies hands its rows over to
	// the others within Lease.
	Lease time.Duration
	// CallTimeout limits one DeliverEvents call; default DefaultCallTimeout.
	CallTimeout time.Duration
	// Lanes is how many calls to each subscriber may be in flight at once
	// (each lane claims and delivers on its own); default DefaultLanes.
	Lanes int
	// ProbeInterval is how often a subscriber whose calls fail is tried
	// with one waiting event (the earliest of a claim partition) regardless
	// of backoff; default
	// DefaultProbeInterval, negative: never (only the backoff schedule).
	ProbeInterval time.Duration
	// PollInterval is the longest a relay waits before looking for due rows
	// (notifications usually wake it sooner); default DefaultPollInterval.
	PollInterval time.Duration
	// MaxBatch and MaxBatchBytes bound one call (default 256 events and
	// 512 KiB, the contract's limits); a larger single event is
	// dead-lettered.
	MaxBatch, MaxBatchBytes int
	// Backoff is the retry schedule; default DefaultBackoff.
	Backoff Backoff
	// HTTPClient carries the calls; default one with HTTP/1.1 and h2c.
	HTTPClient *http.Client
	// ClientOptions are added to the Connect clients' options (after
	// server.ClientOptions and the token interceptor).
	ClientOptions []connect.ClientOption
	// Replica names this relay's replica to the subscribers, in the
	// ReplicaHeader of every call (cartsvc's inbox records it); default
	// the host name and process id.
	Replica string
	// Logger receives delivery problems; default discards.
	Logger *slog.Logger
	// TracerProvider makes the delivery spans; default records none.
	TracerProvider trace.TracerProvider
	// Now, Rand (uniform in [0, 1)) and NewID are the clock, the jitter
	// source and the claim and dead-letter ids; default time.Now,
	// math/rand/v2.Float64 and uuid.New.
	Now   func() time.Time
	Rand  func() float64
	NewID func() uuid.UUID
}

func (c Config) withDefaults() Config {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.Lanes <= 0 {
		c.Lanes = DefaultLanes
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.Backoff == (Backoff{}) {
		c.Backoff = DefaultBackoff
	}
	if c.HTTPClient == nil {
		p := new(http.Protocols)
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		c.HTTPClient = &http.Client{Transport: &http.Transport{Protocols: p, MaxIdleConnsPerHost: 4}}
	}
	if c.Replica == "" {
		host, _ := os.Hostname()
		c.Replica = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.NewID == nil {
		c.NewID = uuid.New
	}
	return c
}
