// Package shopmigrate moves a legacy shared database (schema/legacy) onto
// the two services: in place (the legacy database's own migration, in one
// verified transaction) or split (a resumable, verified copy into
// productsvc's and cartsvc's databases, with catch-up passes). See the
// README section "Moving from a legacy database".
package shopmigrate

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/decoupledshop/shop/internal/envflag"
	"github.com/decoupledshop/shop/internal/money"
)

const usage = `shopmigrate moves a legacy shared database onto productsvc and cartsvc.

Usage:
  shopmigrate split    [flags]   copy into the services' databases (resumable; rerun for a catch-up pass)
  shopmigrate inplace  [flags]   migrate the legacy database itself, in one transaction (--down undoes it)
  shopmigrate generate [flags]   create a legacy test database (schema and dataset)

Run "shopmigrate <command> --help" for a command's flags. Every flag falls
back to the environment variable shown in its help.
`

// Run runs the command in args (flags, each with an environment fallback
// from getenv); reports go to --report-dir and a summary to stdout;
// progress bars go to stderr when it is a terminal. --help prints the
// flags to stdout and returns nil.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("shopmigrate "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var reportDir string
	legacyURL := fs.String("legacy-url", "", "PostgreSQL URL of the legacy database (required)")
	if cmd != "generate" {
		fs.StringVar(&reportDir, "report-dir", ".", "directory the Markdown and JSON reports are written to")
	}
	var run command
	switch cmd {
	case "split":
		cfg, finish := splitFlags(fs)
		run = func(ctx context.Context) (*Report, error) {
			if err := finish(*legacyURL, stderr); err != nil {
				return nil, err
			}
			return Split(ctx, *cfg)
		}
	case "inplace":
		run = inplaceFlags(fs, legacyURL)
	case "generate":
		run = generateFlags(fs, legacyURL, stdout)
	default:
		return fmt.Errorf("unknown command %q: want split, inplace or generate (see --help)", cmd)
	}
	fs.Usage = func() {
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "Usage: shopmigrate %s [flags]\n\nFlags (each falls back to the environment variable shown):\n", cmd)
		fs.PrintDefaults()
	}
	if err := envflag.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	rep, err := run(ctx)
	if rep == nil {
		return err
	}
	return errors.Join(err, writeReport(rep, reportDir, stdout))
}

// command runs a parsed command: its report (nil: none to write) and
// error.
type command func(context.Context) (*Report, error)

// writeReport writes rep's files to dir and its summary to stdout.
func writeReport(rep *Report, dir string, stdout io.Writer) error {
	paths, err := rep.write(dir)
	rep.Markdown(stdout)
	if err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	fmt.Fprintf(stdout, "\nReport: %s and %s\n", paths[0], paths[1])
	return nil
}

// inplaceFlags defines inplace's flags on fs and returns the command.
func inplaceFlags(fs *flag.FlagSet, legacyURL *string) command {
	var cfg InplaceConfig
	fs.BoolVar(&cfg.DryRun, "dry-run", false, "run and verify the migration, then roll it back and report")
	fs.BoolVar(&cfg.Down, "down", false, "undo a committed in-place migration (restore the foreign keys, drop the added columns)")
	fs.DurationVar(&cfg.LockTimeout, "lock-timeout", 5*time.Second, "longest wait for a table lock before giving up (and rolling back)")
	return func(ctx context.Context) (*Report, error) {
		cfg.LegacyURL = *legacyURL
		if cfg.LegacyURL == "" {
			return nil, errors.New("--legacy-url (or LEGACY_URL) is required")
		}
		return Inplace(ctx, cfg)
	}
}

// generateFlags defines generate's flags on fs and returns the command,
// which reports to stdout (no report files).
func generateFlags(fs *flag.FlagSet, legacyURL *string, stdout io.Writer) command {
	size := LargeSize
	schema := fs.Bool("schema", true, "create the legacy schema first (the database must be empty)")
	fs.IntVar(&size.Users, "users", size.Users, "users")
	fs.IntVar(&size.Categories, "categories", size.Categories, "categories")
	fs.IntVar(&size.Products, "products", size.Products, "products")
	fs.IntVar(&size.Carts, "carts", size.Carts, "carts (at most users)")
	fs.IntVar(&size.Items, "items", size.Items, "cart lines")
	fs.IntVar(&size.WishlistItems, "wishlist-items", size.WishlistItems, "wishlist items")
	fs.IntVar(&size.PromoCodes, "promo-codes", size.PromoCodes, "promo codes (at least 4)")
	return func(ctx context.Context) (*Report, error) {
		if *legacyURL == "" {
			return nil, errors.New("--legacy-url (or LEGACY_URL) is required")
		}
		if *schema {
			if err := CreateLegacySchema(ctx, *legacyURL); err != nil {
				return nil, err
			}
		}
		began := time.Now()
		if err := Generate(ctx, *legacyURL, size); err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, "generated %+v in %s\n", size, time.Since(began).Round(time.Millisecond))
		return nil, nil
	}
}

// subscriberName is what the outbox accepts as a subscriber's name.
var subscriberName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// splitFlags defines split's flags on fs; finish validates them and
// completes the config once parsed.
func splitFlags(fs *flag.FlagSet) (*SplitConfig, func(legacyURL string, stderr io.Writer) error) {
	cfg := &SplitConfig{Users: UserMapping{UnmappedPrefix: DefaultUnmappedPrefix}}
	fs.StringVar(&cfg.ProductURL, "product-database-url", "", "PostgreSQL URL of productsvc's migrated database, as its owner (required)")
	fs.StringVar(&cfg.CartURL, "cart-database-url", "", "PostgreSQL URL of cartsvc's migrated database, as its owner (required)")
	fs.StringVar(&cfg.Currency, "currency", "EUR", "the shop currency (ISO 4217) the legacy amounts are in")
	userMap := fs.String("user-map", "", `CSV file of "email-or-legacy-id,subject" lines mapping legacy users to OIDC subjects`)
	rule := fs.String("user-rule", "", `subject of users the map does not name: "email" (the email, lower case) or "" (none: unmapped)`)
	fs.StringVar(&cfg.Users.UnmappedPrefix, "unmapped-prefix", DefaultUnmappedPrefix, "subject prefix (before the legacy user id) of unmapped users' carts")
	fs.BoolVar(&cfg.RoundFractions, "round-fractions", false, "round amounts with fractions of a minor unit half away from zero (each is listed) instead of refusing them")
	fs.IntVar(&cfg.BatchSize, "batch-size", 5000, "legacy rows per batch; each batch commits with its checkpoint")
	fs.DurationVar(&cfg.Overlap, "overlap", time.Minute, "a catch-up pass also re-reads rows changed this long before the previous pass began (legacy transactions running then)")
	fs.DurationVar(&cfg.Throttle, "throttle", 0, "pause after every batch, to spare a live legacy database")
	fs.BoolVar(&cfg.CompareCopy, "compare-copy", false, "first pass: also time a plain COPY of each batch's rows into its table (rolled back) before writing it, for the report's ratio")
	fs.BoolVar(&cfg.DryRun, "dry-run", false, "plan and report (row counts, every problem); write nothing")
	subscribers := fs.String("subscribers", "cartsvc", `productsvc's event subscribers, "name" or "name=url" comma-separated (productsvc's SUBSCRIBERS works as is): a catch-up pass queues the events of the product changes it copies for each`)
	return cfg, func(legacyURL string, stderr io.Writer) error {
		cfg.LegacyURL = legacyURL
		if legacyURL == "" || cfg.ProductURL == "" || cfg.CartURL == "" {
			return errors.New("--legacy-url, --product-database-url and --cart-database-url (or LEGACY_URL, PRODUCT_DATABASE_URL, CART_DATABASE_URL) are required")
		}
		cur, ok := money.ParseCurrency(cfg.Currency)
		if !ok {
			return fmt.Errorf("--currency: %q is not an ISO 4217 code like EUR", cfg.Currency)
		}
		cfg.Currency = string(cur)
		switch *rule {
		case "":
		case "email":
			cfg.Users.EmailRule = true
		default:
			return fmt.Errorf(`--user-rule: %q: want "email" or ""`, *rule)
		}
		if *userMap != "" {
			var err error
			if cfg.Users.ByEmail, cfg.Users.ByID, err = LoadUserMap(*userMap); err != nil {
				return fmt.Errorf("--user-map: %w", err)
			}
		}
		for part := range strings.SplitSeq(*subscribers, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if name == "" {
				continue
			}
			if !subscriberName.MatchString(name) || slices.Contains(cfg.Subscribers, name) {
				return fmt.Errorf("--subscribers: %q: want distinct names of lowercase letters, digits, '_' or '-', starting with a letter", name)
			}
			cfg.Subscribers = append(cfg.Subscribers, name)
		}
		if cfg.BatchSize < 1 || cfg.Overlap < 0 || cfg.Throttle < 0 {
			return errors.New("--batch-size must be positive, --overlap and --throttle not negative")
		}
		cfg.Progress = terminal(stderr)
		return nil
	}
}
