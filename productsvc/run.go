package productsvc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/boot"
	"github.com/decoupledshop/shop/internal/clientcreds"
	"github.com/decoupledshop/shop/internal/envflag"
	"github.com/decoupledshop/shop/internal/money"
	"github.com/decoupledshop/shop/productsvc/migrations"
	"github.com/decoupledshop/shop/productsvc/relay"
)

// Run parses args (flags, each with an environment fallback from getenv),
// starts productsvc and serves until ctx is cancelled, then drains and
// returns. --help prints the flags to stdout and returns nil.
//
// With --subscribers, every catalog change records its events in the
// outbox and the relay delivers them; without, no events are recorded.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("productsvc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg boot.Config
	cfg.RegisterFlags(fs, ":8081")
	currency := fs.String("currency", "EUR", "the shop currency (ISO 4217); prices in any other are refused")
	subscribers := fs.String("subscribers", "", `event subscribers as name=url pairs, comma-separated ("cartsvc=http://localhost:8082"); none: no events are recorded`)
	var cache ReadCacheConfig
	cache.RegisterFlags(fs)
	var rc relay.Config
	clientID := fs.String("relay-client-id", "", "OAuth client id of the relay (client credentials with scope "+auth.DefaultServiceScope+"); required with --subscribers")
	clientSecret := fs.String("relay-client-secret", "", "OAuth client secret of the relay; required with --subscribers")
	tokenURL := fs.String("relay-token-url", "", "token endpoint for the relay's client credentials (default: from the issuer's discovery)")
	fs.IntVar(&rc.MaxAttempts, "relay-max-attempts", relay.DefaultMaxAttempts, "delivery attempts per event and subscriber before it is dead-lettered")
	fs.DurationVar(&rc.MaxAge, "relay-max-age", relay.DefaultMaxAge, "how long after it was queued an event that keeps failing is retried before it is dead-lettered")
	fs.DurationVar(&rc.Lease, "relay-lease", relay.DefaultLease, "how long a relay holds the events it claimed unless it renews the lease (every third of it, while it delivers them); a relay that dies hands its events over within this time")
	fs.DurationVar(&rc.CallTimeout, "relay-call-timeout", relay.DefaultCallTimeout, "longest a delivery call may take")
	fs.IntVar(&rc.Lanes, "relay-lanes", relay.DefaultLanes, "delivery calls each relay may have in flight per subscriber (each product's events stay in order)")
	fs.DurationVar(&rc.ProbeInterval, "relay-probe-interval", relay.DefaultProbeInterval, "how often a failing subscriber is tried with its earliest waiting event, whatever its backoff")
	fs.DurationVar(&rc.PollInterval, "relay-poll-interval", relay.DefaultPollInterval, "longest wait between looks for due events (notifications wake the relay sooner)")
	fs.Usage = func() {
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "productsvc serves the catalog (shop.product.v1 CategoryService and ProductService) and delivers its events.\n\nUsage: productsvc [flags]\n\nFlags (each falls back to the environment variable shown):\n")
		fs.PrintDefaults()
	}
	if err := envflag.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cur, ok := money.ParseCurrency(*currency)
	if !ok {
		return fmt.Errorf("--currency: %q is not an ISO 4217 code like EUR", *currency)
	}
	subs, err := relay.ParseSubscribers(*subscribers)
	if err != nil {
		return fmt.Errorf("--subscribers: %w", err)
	}
	if len(subs) > 0 && (*clientID == "" || *clientSecret == "") {
		return errors.New("--relay-client-id and --relay-client-secret (or RELAY_CLIENT_ID and RELAY_CLIENT_SECRET) are required with --subscribers")
	}
	if rc.MaxAttempts < 1 || rc.MaxAge <= 0 || rc.Lease <= 0 || rc.PollInterval <= 0 || rc.CallTimeout <= 0 || rc.Lanes < 1 || rc.ProbeInterval <= 0 {
		return errors.New("--relay-max-attempts, --relay-max-age, --relay-lease, --relay-call-timeout, --relay-lanes, --relay-probe-interval and --relay-poll-interval must be positive")
	}
	if err := cache.Validate(); err != nil {
		return err
	}
	env, err := boot.Start(ctx, cfg, migrations.FS, stderr)
	if errors.Is(err, boot.ErrMigrated) {
		return nil
	}
	if err != nil {
		return err
	}
	defer env.Close()
	store := NewStore(env.Pool, NewOutbox(relay.Names(subs), nil, nil), cur, nil, nil)
	env.Telemetry.Registry.MustRegister(store.EnableReadCache(cache, env.Logger)...)
	listenCtx, stopListening := context.WithCancel(ctx)
	listening := make(chan struct{})
	go func() { defer close(listening); store.ListenForChanges(listenCtx, env.DirectURL) }()
	defer func() { stopListening(); <-listening }()
	Mount(env.Server, env.HandlerOptions, env.Verifier, store)
	env.Telemetry.Registry.MustRegister(NewBacklogCollector(env.Pool, relay.Names(subs)))
	var rel *relay.Relay
	if len(subs) == 0 {
		env.Logger.Warn("no --subscribers: catalog changes publish no events")
	} else {
		if *tokenURL == "" {
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			*tokenURL, err = clientcreds.TokenURL(dctx, nil, cfg.Auth.IssuerURL)
			cancel()
			if err != nil {
				return err
			}
		}
		rc.Subscribers = subs
		rc.Tokens = clientcreds.New(clientcreds.Config{
			TokenURL: *tokenURL, ClientID: *clientID, ClientSecret: *clientSecret,
			Scopes: []string{auth.DefaultServiceScope},
		})
		rc.ListenURL = env.DirectURL
		rc.Logger = env.Logger
		rc.ClientOptions, rc.TracerProvider = env.Telemetry.ClientOptions(), env.Telemetry.TracerProvider
		rc.Notifier = store.Notifier()
		if rel, err = relay.New(env.Pool, rc); err != nil {
			return err
		}
		env.Telemetry.Registry.MustRegister(rel.Collectors()...)
	}
	env.Logger.Info("productsvc starting", "addr", cfg.Server.Addr, "currency", cur, "subscribers", relay.Names(subs))
	if rel == nil {
		return env.Server.Run(ctx)
	}
	// The relay stops with the server; Run returns once both have.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		_ = rel.Run(ctx)
	}()
	err = env.Server.Run(ctx)
	cancel()
	<-relayDone
	return err
}
