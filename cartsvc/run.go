package cartsvc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/decoupledshop/shop/cartsvc/migrations"
	"github.com/decoupledshop/shop/cartsvc/productclient"
	"github.com/decoupledshop/shop/internal/boot"
	"github.com/decoupledshop/shop/internal/envflag"
	"github.com/decoupledshop/shop/internal/money"
)

// janitorInterval is how often Run prunes expired request results, lapsed
// holds and old inbox rows.
const janitorInterval = 10 * time.Minute

// Run parses args (flags, each with an environment fallback from getenv),
// starts cartsvc and serves until ctx is cancelled, then drains and
// returns. While it serves, it prunes old data every 10 minutes and
// listens for the product versions other replicas apply (over the direct
// database URL), so its product cache never serves older data. --help
// prints the flags to stdout and returns nil.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cartsvc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg boot.Config
	cfg.RegisterFlags(fs, ":8082")
	currency := fs.String("currency", "EUR", "the shop currency (ISO 4217); products and promo codes in any other are refused")
	var pcfg productclient.Config
	pcfg.RegisterFlags(fs)
	var users UserLimits
	users.RegisterFlags(fs)
	holdIdle := fs.Duration("promo-hold-idle", DefaultHoldIdle, "a cart's promo code hold lapses after the cart has had no write for this long")
	eventRate := fs.Float64("events-rate", DefaultEventRate, "events per second one service client may deliver (EventSinkService) to all replicas together; more is refused with ResourceExhausted")
	replicas := fs.Int("replicas", 1, "how many cartsvc replicas share --events-rate: each allows events-rate ÷ replicas")
	inboxRetention := fs.Duration("inbox-retention", DefaultInboxRetention, "how long received event ids are kept to answer redeliveries DUPLICATE (product versions are kept for good)")
	fs.Usage = func() {
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "cartsvc serves carts, wishlists and promo codes (shop.cart.v1 CartService, WishlistService and PromoCodeService)\nand receives catalog events (shop.events.v1 EventSinkService, DeadLetterService).\n\nUsage: cartsvc [flags]\n\nFlags (each falls back to the environment variable shown):\n")
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
	if err := pcfg.Validate(); err != nil {
		return err
	}
	if err := users.Validate(); err != nil {
		return err
	}
	for name, d := range map[string]time.Duration{"promo-hold-idle": *holdIdle, "inbox-retention": *inboxRetention} {
		if d <= 0 {
			return fmt.Errorf("--%s: must be positive, got %s", name, d)
		}
	}
	if !(*eventRate > 0) || math.IsInf(*eventRate, 0) {
		return fmt.Errorf("--events-rate: must be a positive number of events per second, got %g", *eventRate)
	}
	if *replicas < 1 {
		return fmt.Errorf("--replicas: must be at least 1, got %d", *replicas)
	}
	env, err := boot.Start(ctx, cfg, migrations.FS, stderr)
	if errors.Is(err, boot.ErrMigrated) {
		return nil
	}
	if err != nil {
		return err
	}
	defer env.Close()
	pcfg.Logger, pcfg.ClientOptions = env.Logger, env.Telemetry.ClientOptions()
	products, err := productclient.New(pcfg)
	if err != nil {
		return err
	}
	defer products.Close()
	env.Telemetry.Registry.MustRegister(products.Collectors()...)
	svc := NewService(env.Pool, products, Options{
		Currency: cur, HoldIdle: *holdIdle, Logger: env.Logger,
		EventRate: *eventRate / float64(*replicas), InboxRetention: *inboxRetention, Users: users,
		Tracer: env.Telemetry.Tracer("github.com/decoupledshop/shop/cartsvc"),
	})
	Mount(env.Server, env.HandlerOptions, env.Verifier, svc)

	if *replicas == 1 {
		// Each replica allows events-rate ÷ replicas: with the default of 1
		// behind several replicas, the global rate is exceeded that many times.
		if n, err := svc.OtherReplicas(ctx); err != nil {
			env.Logger.Warn("cannot count the replicas sharing the database", "error", err)
		} else if n > 0 {
			env.Logger.Warn("other cartsvc replicas share this database but --replicas is 1: each replica allows the whole --events-rate; set --replicas to the replica count",
				"other_replicas", n, "events_rate", *eventRate)
		}
	}
	bgCtx, stopBackground := context.WithCancel(ctx)
	var background sync.WaitGroup
	background.Go(func() { svc.RunJanitor(bgCtx, janitorInterval, env.Logger) })
	background.Go(func() { svc.ListenForVersions(bgCtx, env.DirectURL) })
	defer background.Wait()
	defer stopBackground()

	env.Logger.Info("cartsvc starting", "addr", cfg.Server.Addr, "currency", cur, "product_url", pcfg.BaseURL,
		"events_rate_per_replica", *eventRate/float64(*replicas))
	return env.Server.Run(ctx)
}
