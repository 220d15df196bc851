// Package shopload is the shop's load generator: it starts the whole
// stack on loopback (a durable PostgreSQL, the dev issuer, productsvc and
// cartsvc as separate processes), seeds it, and measures the hot paths
// against baselines run in the same process and on the same PostgreSQL,
// interleaved (a plain net/http JSON handler, raw pgx INSERT and SELECT).
// cmd/shopload is its command; the soak and the fault tests use the same
// generator.
package shopload

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/decoupledshop/shop/internal/envflag"
)

// config is shopload's flags.
type config struct {
	bench       BenchConfig
	products    int
	users       int
	lines       int
	out         string
	binDir      string
	only        string
	productArgs string
	cartArgs    string
	target      targetFlags
}

// targetFlags point shopload at a running stack instead of starting one.
type targetFlags struct {
	productURL, cartURL, issuerURL, noCacheURL, cartMetricsURL string
	users, admin, password                                     string
	productDB, cartDB, benchDB                                 string
}

func (c *config) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.bench.Duration, "duration", 10*time.Second, "how long each scenario runs in each repetition")
	fs.DurationVar(&c.bench.StormDuration, "storm-duration", 20*time.Second, "how long the price-change storm runs in each repetition")
	fs.IntVar(&c.bench.Reps, "reps", 5, "repetitions of all baselines and scenarios, interleaved (at least 3 for a spread)")
	fs.IntVar(&c.bench.Concurrency, "concurrency", 32, "concurrent clients of each service scenario and of the plain handler")
	fs.IntVar(&c.bench.DBWorkers, "db-workers", 8, "workers of the raw pgx INSERT and SELECT baselines")
	fs.IntVar(&c.bench.MaxRequests, "max-requests", 1_000_000, "at most this many requests per scenario and repetition")
	fs.DurationVar(&c.bench.Timeout, "timeout", 10*time.Second, "deadline of each request")
	fs.IntVar(&c.bench.Backlog, "backlog", 50_000, "events in the outbox backlog scenario")
	fs.DurationVar(&c.bench.BacklogTimeout, "backlog-timeout", 3*time.Minute, "longest the backlog scenario waits for the outbox to drain (the rate is then what drained)")
	fs.DurationVar(&c.bench.SettleTimeout, "settle-timeout", 5*time.Minute, "longest wait for the outbox to empty after a scenario that writes events")
	fs.IntVar(&c.products, "products", 10_000, "products seeded into the catalog")
	fs.IntVar(&c.users, "users", 100, "shoppers, each seeded with a cart")
	fs.IntVar(&c.lines, "lines", 20, "lines in each shopper's cart")
	fs.StringVar(&c.out, "out", "bench/latest", "results go to OUT.json and OUT.md")
	fs.StringVar(&c.bench.ProfileDir, "profile-dir", "", "write a CPU profile of each service during each scenario's first repetition here (SCENARIO-SERVICE.pprof; read with go tool pprof)")
	fs.StringVar(&c.binDir, "bin-dir", "", "prebuilt productsvc and cartsvc binaries (default: go build them from this module)")
	fs.StringVar(&c.only, "scenarios", "", "comma-separated scenarios to run besides the baselines (default all: "+strings.Join(Scenarios()[3:], ",")+")")
	fs.StringVar(&c.productArgs, "productsvc-args", "", "extra flags for productsvc, space-separated (e.g. \"--admin-addr 127.0.0.1:9081\")")
	fs.StringVar(&c.cartArgs, "cartsvc-args", benchCartArgs, "extra flags for cartsvc, space-separated")
	t := &c.target
	fs.StringVar(&t.productURL, "product-url", "", "target a running productsvc (loopback) instead of starting the stack; needs --cart-url and --issuer-url")
	fs.StringVar(&t.cartURL, "cart-url", "", "the running cartsvc (loopback)")
	fs.StringVar(&t.issuerURL, "issuer-url", "", "the running stack's issuer; tokens come from its password grant")
	fs.StringVar(&t.noCacheURL, "cart-nocache-url", "", "a running cartsvc replica with its caches off (--product-cache-ttl 1ns --cart-cache-mb 0; default: GetCart with the caches off is skipped)")
	fs.StringVar(&t.cartMetricsURL, "cart-metrics-url", "", "the running cartsvc's Prometheus endpoint on its admin listener, e.g. http://127.0.0.1:9082/metrics (default: none)")
	fs.StringVar(&t.users, "target-users", "alice,bob", "shoppers the running issuer knows, comma-separated (their carts get --lines lines)")
	fs.StringVar(&t.admin, "target-admin", "admin", "a user of the running issuer with role admin")
	fs.StringVar(&t.password, "target-password", "", "the users' password (default: each user's name, as the dev issuer's demo users)")
	fs.StringVar(&t.productDB, "target-product-database-url", "", "productsvc's database, to watch its outbox (default: the storm and the backlog are skipped)")
	fs.StringVar(&t.cartDB, "target-cart-database-url", "", "cartsvc's database, to measure delivery lag")
	fs.StringVar(&t.benchDB, "baseline-database-url", "", "a database on the same PostgreSQL where the raw pgx baselines may create tables (default: they are skipped)")
}

// build returns the running stack as a target, or nil when none is named.
func (t *targetFlags) build() (*Target, error) {
	if t.productURL == "" && t.cartURL == "" {
		return nil, nil
	}
	if t.productURL == "" || t.cartURL == "" || t.issuerURL == "" {
		return nil, errors.New("--product-url, --cart-url and --issuer-url go together")
	}
	for flagName, u := range map[string]string{"--product-url": t.productURL, "--cart-url": t.cartURL, "--issuer-url": t.issuerURL, "--cart-nocache-url": t.noCacheURL, "--cart-metrics-url": t.cartMetricsURL} {
		if u == "" {
			continue
		}
		if err := checkLoopback(flagName, u); err != nil {
			return nil, err
		}
	}
	if (t.productDB == "") != (t.cartDB == "") {
		return nil, errors.New("--target-product-database-url and --target-cart-database-url go together")
	}
	tg := &Target{
		ProductURL: t.productURL, CartURL: t.cartURL, NoCacheURL: t.noCacheURL, CartMetricsURL: t.cartMetricsURL,
		ProductDB: t.productDB, CartDB: t.cartDB, BenchDB: t.benchDB,
		Token: passwordTokens(t.issuerURL, t.password), Admin: t.admin,
	}

	for _, u := range strings.Split(t.users, ",") {
		if u = strings.TrimSpace(u); u != "" {
			tg.Users = append(tg.Users, u)
		}
	}
	return tg, nil
}

func (c *config) validate() error {
	b := c.bench
	switch {
	case b.Duration <= 0 || b.StormDuration <= 0 || b.Timeout <= 0 || b.BacklogTimeout <= 0 || b.SettleTimeout <= 0:
		return errors.New("--duration, --storm-duration, --timeout, --backlog-timeout and --settle-timeout must be positive")
	case b.Reps < 1 || b.Concurrency < 1 || b.DBWorkers < 1 || b.MaxRequests < 1:
		return errors.New("--reps, --concurrency, --db-workers and --max-requests must be at least 1")
	case c.products < 10 || c.users < 1 || c.lines < 1 || c.lines > c.products:
		return errors.New("--products must be at least 10, --users and --lines at least 1, and --lines at most --products")
	case b.Backlog < 1:
		return errors.New("--backlog must be at least 1")
	}
	for _, s := range c.bench.Only {
		if _, ok := scenarioTitles[s]; !ok {
			return fmt.Errorf("--scenarios: unknown scenario %q (known: %s)", s, strings.Join(Scenarios(), ", "))
		}
	}
	return nil
}

// Run parses args (flags, each with an environment fallback SHOPLOAD_…
// from getenv) and runs the benchmark: it starts and seeds the stack,
// runs every baseline and scenario --reps times interleaved, prints the
// ratio table to stdout and writes --out.json and --out.md. "shopload
// soak" runs the soak instead (see RunSoak). Progress goes to stderr.
// Everything listens on loopback only and stops when Run returns.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "soak" {
		return RunSoak(ctx, args[1:], getenv, stdout, stderr)
	}
	cfg, err := parseRun(args, getenv, stdout, stderr)
	if cfg == nil {
		return err // nil after --help
	}
	rep := cfg.newReport(ctx, args)
	defer RemoveBuilt()
	tg, st, err := cfg.startTarget(ctx, rep, stderr)
	if err != nil {
		return err
	}
	if st != nil {
		defer st.Close()
	}
	clients := NewClients(cfg.bench.Concurrency, tg.ProductURL, tg.CartURL, tg.NoCacheURL)
	shop, err := Seed(ctx, tg, SeedConfig{Products: cfg.products, Users: cfg.users, Lines: cfg.lines}, clients, stderr)
	if err != nil {
		return fmt.Errorf("seed: %w%s", err, logHint(st))
	}
	if st != nil {
		if err := st.EnableEvents(); err != nil {
			return err
		}
	}
	rep.Machine = Machine{CPUModel: cpuModel(), Cores: runtime.NumCPU(), GoVersion: runtime.Version(),
		Postgres: postgresVersion(ctx, tg.BenchDB), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if cfg.bench.ProfileDir != "" {
		if err := os.MkdirAll(cfg.bench.ProfileDir, 0o755); err != nil {
			return err
		}
	}
	results, err := RunBench(ctx, cfg.bench, tg, shop, stderr)
	if err != nil {
		return fmt.Errorf("%w%s", err, logHint(st))
	}
	rep.Finished = time.Now()
	rep.build(results)
	if err := rep.Write(cfg.out); err != nil {
		return err
	}
	rep.Markdown(stdout)
	fmt.Fprintf(stderr, "wrote %s.json and %s.md\n", cfg.out, cfg.out)
	return nil
}

// parseRun parses and validates the benchmark's flags; a nil config with
// a nil error means --help was shown.
func parseRun(args []string, getenv func(string) string, stdout, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("shopload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	cfg.register(fs)
	fs.Usage = func() {
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "shopload measures the shop's hot paths on loopback against baselines measured in the same run.\n\n"+
			"Usage:\n  shopload [flags]        benchmark: start, seed, run every scenario, write --out.json and --out.md\n"+
			"  shopload soak [flags]   soak: mixed traffic and an event storm; fails on growth or any error\n\nFlags (each falls back to the environment variable shown):\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil
		}
		return nil, err
	}
	if cfg.only != "" {
		cfg.bench.Only = strings.Split(cfg.only, ",")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// newReport starts the run's report with its configuration.
func (c *config) newReport(ctx context.Context, args []string) *Report {
	return &Report{Command: commandLine(args), Commit: gitCommit(ctx), Started: time.Now(), Config: map[string]any{
		"duration": c.bench.Duration.String(), "storm_duration": c.bench.StormDuration.String(), "reps": c.bench.Reps, "concurrency": c.bench.Concurrency,
		"db_workers": c.bench.DBWorkers, "products": c.products, "users": c.users, "lines": c.lines,
		"backlog": c.bench.Backlog, "backlog_timeout": c.bench.BacklogTimeout.String(), "timeout": c.bench.Timeout.String(),
		"productsvc_args": c.productArgs, "cartsvc_args": c.cartArgs,
	}}
}

// startTarget returns the running stack the flags name, or starts one
// (st, which the caller closes), and notes the setup in rep.
func (c *config) startTarget(ctx context.Context, rep *Report, stderr io.Writer) (tg *Target, st *Stack, err error) {
	if tg, err = c.target.build(); err != nil {
		return nil, nil, err
	}
	if tg != nil {
		c.users = min(c.users, len(tg.Users))
		rep.Config["target"] = c.target.productURL + " " + c.target.cartURL
		rep.Setup = []string{"A running stack named by --product-url and --cart-url; CPU and RSS of its processes are not known to shopload."}
		return tg, nil, nil
	}
	st, err = StartStack(ctx, StackConfig{
		BinDir: c.binDir, Users: c.users, NoCacheReplica: true, Log: stderr,
		ProductArgs: strings.Fields(c.productArgs), CartArgs: strings.Fields(c.cartArgs),
	})
	if err != nil {
		return nil, nil, err
	}
	rep.Setup = stackSetup
	return st.Target(), st, nil
}

// benchCartArgs lift cartsvc's per-user limits (checked still, never
// reached): the benchmark's few users stand for many, and 32 clients over
// them would otherwise measure the 20 requests/s one user may make.
const benchCartArgs = "--user-rate 100000 --user-burst 100000"

// stackSetup describes how a run that starts its own stack measures.
var stackSetup = []string{
	"Everything on loopback on this machine: load generator, plain handler, productsvc, cartsvc (and a cache-off cartsvc replica on the same database), PostgreSQL (fsync on, one cluster for both services and the baselines).",
	"productsvc and cartsvc are the binaries of ./cmd/productsvc and ./cmd/cartsvc, run as separate processes with their default flags plus --log-level warn (productsvc with cartsvc as its subscriber); CPU per request is from /proc/<pid>/stat (postgres: the postmaster and all its children).",
	"Clients are the generated Connect clients over HTTP/1.1 (binary protobuf unless named JSON), closed loop: each client sends its next request when the last one answered; each keeps to its own share of the users, so no two concurrent cart requests are one user's.",
	"cartsvc runs with the --cartsvc-args of the config (by default " + benchCartArgs + ": the per-user limits are checked but not reached; the users stand for many more).",
	"The plain handler runs in the load generator's process (its CPU is in the shopload column).",
	"Before each scenario the tool runs ANALYZE on both services' databases, as autovacuum keeps statistics current in a running shop (it analyzes at most once a minute; a prepared statement planned while a table was empty, e.g. the inbox or the request results, keeps its plan until then), and waits (up to 15 s, noted when longer than one 250 ms window) until the services and PostgreSQL together use under 10% of a core, so background work left by the scenario before (autovacuum, a checkpoint, a draining relay) is not charged to it.",
	"Storm: UpdateProduct on products held in carts; events/s = (acks − growth of the outbox) ÷ window; lag = time from an UpdateProduct's answer until cartsvc's product_versions holds that version (polled every 10 ms, at most 64 writes followed at a time).",
	"Backlog: cartsvc is frozen (SIGSTOP) while category renames queue the events (one per product), then thawed; events/s = events drained ÷ time to an empty outbox.",
}

// gitCommit is the working directory's git commit, "+dirty" when it has
// uncommitted changes to tracked files, or "" outside a git checkout.
func gitCommit(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(out))
	if status, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(status) > 0 {
		commit += "+dirty"
	}
	return commit
}

// logHint points at the services' logs when shopload started them.
func logHint(st *Stack) string {
	if st == nil {
		return ""
	}
	return " (logs in " + st.LogDir() + ")"
}

// parseFlags parses args into fs, each flag falling back to SHOPLOAD_<NAME>
// from getenv, as --help says.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " (env SHOPLOAD_" + envflag.EnvName(f.Name) + ")" })
	return envflag.Parse(fs, args, func(k string) string { return getenv("SHOPLOAD_" + k) })
}

// commandLine is the command with the arguments Run was given.
func commandLine(args []string) string {
	out := []string{"shopload"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \"'$") {
			a = fmt.Sprintf("%q", a)
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}
