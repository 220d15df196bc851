package productsvc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"

	"github.com/decoupledshop/shop/internal/boot"
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
	var cache ReadCacheConfig
	cache.RegisterFlags(fs)
	var rf relay.Flags
	rf.RegisterFlags(fs)
	fs.Usage = usage(fs, stdout)
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
	if err := rf.Validate(); err != nil {
		return err
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
	subs := relay.Names(rf.Config.Subscribers)
	store := NewStore(env.Pool, NewOutbox(subs, nil, nil), cur, nil, nil)
	env.Telemetry.Registry.MustRegister(store.EnableReadCache(cache, env.Logger)...)
	Mount(env.Server, env.HandlerOptions, env.Verifier, store)
	env.Telemetry.Registry.MustRegister(NewBacklogCollector(env.Pool, subs))
	rel, err := newRelay(ctx, env, rf, cfg.Auth.IssuerURL, store.Notifier())
	if err != nil {
		return err
	}
	env.Logger.Info("productsvc starting", "addr", cfg.Server.Addr, "currency", cur, "subscribers", subs)
	return serve(ctx, env, store, rel)
}

// usage prints what productsvc is and its flags to stdout (--help).
func usage(fs *flag.FlagSet, stdout io.Writer) func() {
	return func() {
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "productsvc serves the catalog (shop.product.v1 CategoryService and ProductService) and delivers its events.\n\nUsage: productsvc [flags]\n\nFlags (each falls back to the environment variable shown):\n")
		fs.PrintDefaults()
	}
}

// newRelay returns the relay that delivers the outbox to rf's subscribers
// over env's pool and telemetry, woken by notifier; nil, with a warning,
// when there are none.
func newRelay(ctx context.Context, env *boot.Env, rf relay.Flags, issuerURL string, notifier *relay.Notifier) (*relay.Relay, error) {
	if len(rf.Config.Subscribers) == 0 {
		env.Logger.Warn("no --subscribers: catalog changes publish no events")
		return nil, nil
	}
	rc := rf.Config
	var err error
	if rc.Tokens, err = rf.Tokens(ctx, issuerURL); err != nil {
		return nil, err
	}
	rc.ListenURL, rc.Logger, rc.Notifier = env.DirectURL, env.Logger, notifier
	rc.ClientOptions, rc.TracerProvider = env.Telemetry.ClientOptions(), env.Telemetry.TracerProvider
	rel, err := relay.New(env.Pool, rc)
	if err != nil {
		return nil, err
	}
	env.Telemetry.Registry.MustRegister(rel.Collectors()...)
	return rel, nil
}

// serve runs env's server until ctx is done and, beside it, the listener
// that keeps store's read cache in step with the other replicas and rel, if
// any: they stop with the server, and serve returns once all have.
func serve(ctx context.Context, env *boot.Env, store *Store, rel *relay.Relay) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { store.ListenForChanges(ctx, env.DirectURL) })
	if rel != nil {
		wg.Go(func() { _ = rel.Run(ctx) })
	}
	err := env.Server.Run(ctx)
	cancel()
	wg.Wait()
	return err
}
