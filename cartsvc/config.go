package cartsvc

import (
	"flag"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/decoupledshop/shop/cartsvc/productclient"
	"github.com/decoupledshop/shop/internal/boot"
	"github.com/decoupledshop/shop/internal/envflag"
	"github.com/decoupledshop/shop/internal/money"
)

// config is what Run is configured with: the start-up every service
// shares, the productsvc client and cartsvc's own flags.
type config struct {
	boot     boot.Config
	products productclient.Config
	users    UserLimits
	carts    CartCacheConfig

	currencyCode   string
	currency       money.Currency // currencyCode, checked by validate
	holdIdle       time.Duration
	eventRate      float64
	replicas       int
	inboxRetention time.Duration
}

// parse reads c from args, each flag falling back to the environment
// variable getenv returns for it, and validates it. --help prints the
// flags to stdout and returns flag.ErrHelp; errors in args are also
// printed to stderr.
func (c *config) parse(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cartsvc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.registerFlags(fs)
	fs.Usage = func() {
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "cartsvc serves carts, wishlists and promo codes (shop.cart.v1 CartService, WishlistService and PromoCodeService)\nand receives catalog events (shop.events.v1 EventSinkService, DeadLetterService).\n\nUsage: cartsvc [flags]\n\nFlags (each falls back to the environment variable shown):\n")
		fs.PrintDefaults()
	}
	if err := envflag.Parse(fs, args, getenv); err != nil {
		return err
	}
	return c.validate()
}

// registerFlags registers every flag of cartsvc on fs; they fill c when fs
// is parsed.
func (c *config) registerFlags(fs *flag.FlagSet) {
	c.boot.RegisterFlags(fs, ":8082")
	c.products.RegisterFlags(fs)
	c.users.RegisterFlags(fs)
	c.carts.RegisterFlags(fs)
	fs.StringVar(&c.currencyCode, "currency", "EUR", "the shop currency (ISO 4217); products and promo codes in any other are refused")
	fs.DurationVar(&c.holdIdle, "promo-hold-idle", DefaultHoldIdle, "a cart's promo code hold lapses after the cart has had no write for this long")
	fs.Float64Var(&c.eventRate, "events-rate", DefaultEventRate, "events per second one service client may deliver (EventSinkService) to all replicas together; more is refused with ResourceExhausted")
	fs.IntVar(&c.replicas, "replicas", 1, "how many cartsvc replicas share --events-rate: each allows events-rate ÷ replicas")
	fs.DurationVar(&c.inboxRetention, "inbox-retention", DefaultInboxRetention, "how long received event ids are kept to answer redeliveries DUPLICATE (product versions are kept for good)")
}

// validate checks the values the flags set (boot.Start checks the shared
// ones) and sets c.currency.
func (c *config) validate() error {
	cur, ok := money.ParseCurrency(c.currencyCode)
	if !ok {
		return fmt.Errorf("--currency: %q is not an ISO 4217 code like EUR", c.currencyCode)
	}
	c.currency = cur
	if err := c.products.Validate(); err != nil {
		return err
	}
	if err := c.users.Validate(); err != nil {
		return err
	}
	if err := c.carts.Validate(); err != nil {
		return err
	}
	for name, d := range map[string]time.Duration{"promo-hold-idle": c.holdIdle, "inbox-retention": c.inboxRetention} {
		if d <= 0 {
			return fmt.Errorf("--%s: must be positive, got %s", name, d)
		}
	}
	if !(c.eventRate > 0) || math.IsInf(c.eventRate, 0) {
		return fmt.Errorf("--events-rate: must be a positive number of events per second, got %g", c.eventRate)
	}
	if c.replicas < 1 {
		return fmt.Errorf("--replicas: must be at least 1, got %d", c.replicas)
	}
	return nil
}

// replicaEventRate is the events per second this replica allows one
// caller: its share of --events-rate.
func (c *config) replicaEventRate() float64 { return c.eventRate / float64(c.replicas) }

// options are the Service options c asks for, with env's logger and tracer.
func (c *config) options(env *boot.Env) Options {
	return Options{
		Currency: c.currency, HoldIdle: c.holdIdle, Logger: env.Logger,
		EventRate: c.replicaEventRate(), InboxRetention: c.inboxRetention, Users: c.users,
		Tracer:    env.Telemetry.Tracer("github.com/decoupledshop/shop/cartsvc"),
		CartCache: c.carts,
	}
}
