package productsvc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/decoupledshop/shop/internal/boot"
	"github.com/decoupledshop/shop/internal/envflag"
	"github.com/decoupledshop/shop/internal/money"
	"github.com/decoupledshop/shop/productsvc/migrations"
)

// Run parses args (flags, each with an environment fallback from getenv),
// starts productsvc and serves until ctx is cancelled, then drains and
// returns. --help prints the flags to stdout and returns nil.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("productsvc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg boot.Config
	cfg.RegisterFlags(fs, ":8081")
	currency := fs.String("currency", "EUR", "the shop currency (ISO 4217); prices in any other are refused")
	fs.Usage = func() {
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "productsvc serves the catalog (shop.product.v1 CategoryService and ProductService).\n\nUsage: productsvc [flags]\n\nFlags (each falls back to the environment variable shown):\n")
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
	env, err := boot.Start(ctx, cfg, migrations.FS, stderr)
	if err != nil {
		return err
	}
	defer env.Close()
	catalog := NewCatalog(env.Pool, noEvents{}, cur, nil, nil)
	Mount(env.Server, env.HandlerOptions, env.Verifier, catalog)
	env.Logger.Info("productsvc starting", "addr", cfg.Server.Addr, "currency", cur)
	return env.Server.Run(ctx)
}
