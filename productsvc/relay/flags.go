package relay

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/clientcreds"
)

// Flags is the relay's part of a service's command line: its subscribers,
// its client credentials and the delivery settings of Config.
type Flags struct {
	// Config receives the delivery settings (--relay-max-attempts and the
	// others) and, from Validate, the parsed --subscribers.
	Config Config
	// ClientID and ClientSecret are the relay's client credentials
	// (--relay-client-id, --relay-client-secret).
	ClientID, ClientSecret string
	// TokenURL is the token endpoint (--relay-token-url); empty: from the
	// issuer's discovery.
	TokenURL string

	subscribers string
}

// discoveryTimeout bounds reading the issuer's discovery for the token
// endpoint.
const discoveryTimeout = 30 * time.Second

// RegisterFlags defines --subscribers and the --relay-* flags on fs, with
// their defaults.
func (f *Flags) RegisterFlags(fs *flag.FlagSet) {
	c := &f.Config
	fs.StringVar(&f.subscribers, "subscribers", "", `event subscribers as name=url pairs, comma-separated ("cartsvc=http://localhost:8082"); none: no events are recorded`)
	fs.StringVar(&f.ClientID, "relay-client-id", "", "OAuth client id of the relay (client credentials with scope "+auth.DefaultServiceScope+"); required with --subscribers")
	fs.StringVar(&f.ClientSecret, "relay-client-secret", "", "OAuth client secret of the relay; required with --subscribers")
	fs.StringVar(&f.TokenURL, "relay-token-url", "", "token endpoint for the relay's client credentials (default: from the issuer's discovery)")
	fs.IntVar(&c.MaxAttempts, "relay-max-attempts", DefaultMaxAttempts, "delivery attempts per event and subscriber before it is dead-lettered")
	fs.DurationVar(&c.MaxAge, "relay-max-age", DefaultMaxAge, "how long after it was queued an event that keeps failing is retried before it is dead-lettered")
	fs.DurationVar(&c.Lease, "relay-lease", DefaultLease, "how long a relay holds the events it claimed unless it renews the lease (every third of it, while it delivers them); a relay that dies hands its events over within this time")
	fs.DurationVar(&c.CallTimeout, "relay-call-timeout", DefaultCallTimeout, "longest a delivery call may take")
	fs.IntVar(&c.Lanes, "relay-lanes", DefaultLanes, "delivery calls each relay may have in flight per subscriber (each product's events stay in order)")
	fs.DurationVar(&c.ProbeInterval, "relay-probe-interval", DefaultProbeInterval, "how often a failing subscriber is tried with one waiting event, whatever its backoff")
	fs.DurationVar(&c.PollInterval, "relay-poll-interval", DefaultPollInterval, "longest wait between looks for due events (notifications wake the relay sooner)")
}

// Validate parses --subscribers into Config.Subscribers and checks that
// subscribers come with client credentials and that every delivery setting
// is positive. Errors name the flags to fix.
func (f *Flags) Validate() error {
	subs, err := ParseSubscribers(f.subscribers)
	if err != nil {
		return fmt.Errorf("--subscribers: %w", err)
	}
	f.Config.Subscribers = subs
	if len(subs) > 0 && (f.ClientID == "" || f.ClientSecret == "") {
		return errors.New("--relay-client-id and --relay-client-secret (or RELAY_CLIENT_ID and RELAY_CLIENT_SECRET) are required with --subscribers")
	}
	if c := f.Config; c.MaxAttempts < 1 || c.MaxAge <= 0 || c.Lease <= 0 || c.PollInterval <= 0 || c.CallTimeout <= 0 || c.Lanes < 1 || c.ProbeInterval <= 0 {
		return errors.New("--relay-max-attempts, --relay-max-age, --relay-lease, --relay-call-timeout, --relay-lanes, --relay-probe-interval and --relay-poll-interval must be positive")
	}
	return nil
}

// Tokens returns the source of the relay's access tokens (client
// credentials with scope auth.DefaultServiceScope), at TokenURL or, when
// that is empty, at the token endpoint issuerURL's discovery names (read
// within 30 seconds).
func (f *Flags) Tokens(ctx context.Context, issuerURL string) (*clientcreds.Source, error) {
	tokenURL := f.TokenURL
	if tokenURL == "" {
		ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
		defer cancel()
		var err error
		if tokenURL, err = clientcreds.TokenURL(ctx, nil, issuerURL); err != nil {
			return nil, err
		}
	}
	return clientcreds.New(clientcreds.Config{
		TokenURL: tokenURL, ClientID: f.ClientID, ClientSecret: f.ClientSecret,
		Scopes: []string{auth.DefaultServiceScope},
	}), nil
}
