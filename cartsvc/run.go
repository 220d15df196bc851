package cartsvc

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/decoupledshop/shop/cartsvc/migrations"
	"github.com/decoupledshop/shop/cartsvc/productclient"
	"github.com/decoupledshop/shop/internal/boot"
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
	var cfg config
	if err := cfg.parse(args, getenv, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	env, err := boot.Start(ctx, cfg.boot, migrations.FS, stderr)
	if errors.Is(err, boot.ErrMigrated) {
		return nil
	}
	if err != nil {
		return err
	}
	defer env.Close()
	cfg.products.Logger, cfg.products.ClientOptions = env.Logger, env.Telemetry.ClientOptions()
	products, err := productclient.New(cfg.products)
	if err != nil {
		return err
	}
	defer products.Close()
	env.Telemetry.Registry.MustRegister(products.Collectors()...)
	svc := NewService(env.Pool, products, cfg.options(env))
	defer svc.Close()
	Mount(env.Server, env.HandlerOptions, env.Verifier, svc)
	if cfg.replicas == 1 {
		warnOtherReplicas(ctx, svc, env.Logger, cfg.eventRate)
	}

	bgCtx, stopBackground := context.WithCancel(ctx)
	var background sync.WaitGroup
	background.Go(func() { svc.RunJanitor(bgCtx, janitorInterval, env.Logger) })
	background.Go(func() { svc.ListenForVersions(bgCtx, env.DirectURL) })
	defer background.Wait()
	defer stopBackground()

	env.Logger.Info("cartsvc starting", "addr", cfg.boot.Server.Addr, "currency", cfg.currency,
		"product_url", cfg.products.BaseURL, "events_rate_per_replica", cfg.replicaEventRate())
	return env.Server.Run(ctx)
}

// warnOtherReplicas warns when other replicas share svc's database while
// --replicas is 1: each replica allows events-rate ÷ replicas, so with
// the default of 1 behind several replicas the global rate is exceeded
// that many times.
func warnOtherReplicas(ctx context.Context, svc *Service, log *slog.Logger, eventRate float64) {
	if n, err := svc.OtherReplicas(ctx); err != nil {
		log.Warn("cannot count the replicas sharing the database", "error", err)
	} else if n > 0 {
		log.Warn("other cartsvc replicas share this database but --replicas is 1: each replica allows the whole --events-rate; set --replicas to the replica count",
			"other_replicas", n, "events_rate", eventRate)
	}
}
