package shopload

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// SoakConfig configures Soak.
type SoakConfig struct {
	// Duration of the traffic; SampleEvery how often RSS and goroutines
	// are read.
	Duration, SampleEvery time.Duration
	// Rate is requests per second, mixed: GetProduct, GetCart,
	// ListProducts, AddCartItem and UpdateProduct on carted products (the
	// event storm, a tenth of the requests).
	Rate float64
	// Products, Users and Lines size the seeded shop.
	Products, Users, Lines int
	// ProductMetricsURL and CartMetricsURL serve each service's
	// go_goroutines; default the stack's admin listeners.
	ProductMetricsURL, CartMetricsURL string
	// Stack configures the stack Soak starts.
	Stack StackConfig
}

// SoakSample is one reading of both services.
type SoakSample struct {
	At                                time.Duration
	ProductRSSMB, CartRSSMB           float64
	ProductGoroutines, CartGoroutines float64
}

// SoakResult is what a soak came to.
type SoakResult struct {
	Traffic *OpenStats
	Samples []SoakSample
	// Drained is how long the outbox took to empty after the traffic.
	Drained time.Duration
	// Failures lists what makes the soak fail (empty: it passed).
	Failures []string
}

// Soak starts and seeds a stack, runs mixed traffic and an event storm for
// cfg.Duration while sampling both services' RSS and goroutines, and
// fails (Failures) on any failed request, on growth of either between the
// start (after a warm-up) and the end, or when the events are not all
// delivered afterwards.
func Soak(ctx context.Context, cfg SoakConfig, log io.Writer) (*SoakResult, error) {
	cfg.Stack.Users, cfg.Stack.Log = cfg.Users, log
	st, err := StartStack(ctx, cfg.Stack)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	clients := NewClients(64, st.Products.URL(), st.Cart.URL(), "")
	shop, err := Seed(ctx, st.Target(), SeedConfig{Products: cfg.Products, Users: cfg.Users, Lines: cfg.Lines}, clients, log)
	if err != nil {
		return nil, err
	}
	if err := st.EnableEvents(); err != nil {
		return nil, err
	}
	if cfg.ProductMetricsURL == "" {
		cfg.ProductMetricsURL = st.ProductMetricsURL
	}
	if cfg.CartMetricsURL == "" {
		cfg.CartMetricsURL = st.CartMetricsURL
	}
	res := &SoakResult{}
	smp := &soakSampler{ctx: ctx, st: st, cfg: &cfg, http: clients.HTTP, res: res, log: log, began: time.Now()}
	stopSampling := smp.every(cfg.SampleEvery)
	res.Traffic = Open(ctx, OpenConfig{Rate: cfg.Rate, Duration: cfg.Duration, MaxInFlight: 256, Timeout: 10 * time.Second}, shop.Mix(RetryBusy, nil, nil))
	stopSampling()
	smp.sample()
	if err := res.drain(ctx, st.ProductDB); err != nil {
		return nil, err
	}
	for name, s := range res.Traffic.ByOp {
		fmt.Fprintf(log, "%-14s %s\n", name, s)
		if s.Failed > 0 {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: %d requests failed %v, want none", name, s.Failed, s.Errors))
		}
	}
	if res.Traffic.Skipped > 0 {
		fmt.Fprintf(log, "%d requests not sent: %d were waiting for answers\n", res.Traffic.Skipped, 256)
	}
	res.Failures = append(res.Failures, growth(res.Samples)...)
	return res, nil
}

// soakSampler samples the services' RSS and goroutines into res.Samples,
// logging each sample.
type soakSampler struct {
	ctx   context.Context
	st    *Stack
	cfg   *SoakConfig
	http  *http.Client
	res   *SoakResult
	log   io.Writer
	began time.Time
}

// sample takes one sample.
func (smp *soakSampler) sample() {
	s := SoakSample{At: time.Since(smp.began)}
	s.ProductRSSMB = float64(rss(smp.st.Products.Pid())) / (1 << 20)
	s.CartRSSMB = float64(rss(smp.st.Cart.Pid())) / (1 << 20)
	s.ProductGoroutines, _ = Scrape(smp.ctx, smp.http, smp.cfg.ProductMetricsURL).Goroutines()
	s.CartGoroutines, _ = Scrape(smp.ctx, smp.http, smp.cfg.CartMetricsURL).Goroutines()
	smp.res.Samples = append(smp.res.Samples, s)
	fmt.Fprintf(smp.log, "%6s  RSS productsvc %6.1f MB cartsvc %6.1f MB  goroutines productsvc %4.0f cartsvc %4.0f\n",
		s.At.Round(time.Second), s.ProductRSSMB, s.CartRSSMB, s.ProductGoroutines, s.CartGoroutines)
}

// every samples now and then every d until stop, which waits for the
// last sample.
func (smp *soakSampler) every(d time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(smp.ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(d)
		defer tick.Stop()
		for {
			smp.sample()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		cancel()
		<-sampled
	}
}

// drain waits up to 2 minutes for productsvc's outbox (in productDB) to
// empty, recording how long it took and a failure if it did not.
func (res *SoakResult) drain(ctx context.Context, productDB string) error {
	pool, err := pgxpool.New(ctx, productDB)
	if err != nil {
		return err
	}
	defer pool.Close()
	drainBegan := time.Now()
	left, err := waitOutboxEmpty(ctx, pool, 2*time.Minute)
	res.Drained = time.Since(drainBegan)
	switch {
	case err != nil:
		res.Failures = append(res.Failures, fmt.Sprintf("outbox unreadable: %v", err))
	case left > 0:
		res.Failures = append(res.Failures, fmt.Sprintf("%d events still undelivered 2 minutes after the traffic", left))
	}
	return nil
}

// Mix is the soak's and the fault tests' mixed traffic: GetProduct 35,
// GetCart 30, ListProducts 10, AddCartItem 15 and UpdateProduct on carted
// products 10 (the event storm). Every request retries what retry says
// (reads are idempotent; cart writes retry with the same request_id);
// onAdd and onUpdate hear of acknowledged writes.
func (s *Shop) Mix(retry Retry, onAdd func(AddedItem), onUpdate func(Ack)) []MixOp {
	read := func(op Op) Op {
		if retry == NoRetry {
			return op
		}
		return func(ctx context.Context, w *Worker) error {
			return call(ctx, retry, func() error { return op(ctx, w) })
		}
	}
	return []MixOp{
		{Name: "GetProduct", Weight: 35, Op: read(s.GetProduct(false))},
		{Name: "GetCart", Weight: 30, Op: read(s.GetCart(s.Clients.Cart, nil))},
		{Name: "ListProducts", Weight: 10, Op: read(s.ListProducts())},
		{Name: "AddCartItem", Weight: 15, Op: s.AddCartItem(retry, onAdd)},
		{Name: "UpdateProduct", Weight: 10, Op: s.UpdateProduct(s.CartProductIDs, retry, onUpdate)},
	}
}

// growth compares the samples after a warm-up (the first fifth of the run
// left out) with the last fifth: RSS may grow by a quarter plus 32 MB,
// goroutines by a quarter plus 20; more is a failure.
func growth(samples []SoakSample) []string {
	if len(samples) < 5 {
		return []string{fmt.Sprintf("only %d samples: run longer or sample more often", len(samples))}
	}
	fifth := len(samples) / 5
	start, end := samples[fifth:2*fifth+1], samples[len(samples)-fifth:]
	median := func(ss []SoakSample, f func(SoakSample) float64) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	var out []string
	for _, c := range []struct {
		what  string
		f     func(SoakSample) float64
		slack float64
	}{
		{"productsvc RSS (MB)", func(s SoakSample) float64 { return s.ProductRSSMB }, 32},
		{"cartsvc RSS (MB)", func(s SoakSample) float64 { return s.CartRSSMB }, 32},
		{"productsvc goroutines", func(s SoakSample) float64 { return s.ProductGoroutines }, 20},
		{"cartsvc goroutines", func(s SoakSample) float64 { return s.CartGoroutines }, 20},
	} {
		a, b := median(start, c.f), median(end, c.f)
		if a == 0 && b == 0 {
			out = append(out, c.what+": no readings (is the metrics URL right?)")
			continue
		}
		if b > a*1.25+c.slack {
			out = append(out, fmt.Sprintf("%s grew from %.0f to %.0f (allowed: a quarter plus %.0f)", c.what, a, b, c.slack))
		}
	}
	return out
}

// RunSoak is "shopload soak": flags (env SHOPLOAD_…), then Soak; an
// error lists every failure.
func RunSoak(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shopload soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg SoakConfig
	var productArgs, cartArgs string
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "how long the traffic runs")
	fs.DurationVar(&cfg.SampleEvery, "sample-every", 10*time.Second, "how often RSS and goroutines are read")
	fs.Float64Var(&cfg.Rate, "rate", 150, "requests per second (open loop), a tenth of them UpdateProduct on carted products")
	fs.IntVar(&cfg.Products, "products", 2000, "products seeded")
	fs.IntVar(&cfg.Users, "users", 50, "shoppers, each with a cart")
	fs.IntVar(&cfg.Lines, "lines", 20, "lines in each cart")
	fs.StringVar(&cfg.ProductMetricsURL, "product-metrics-url", "", "productsvc's Prometheus endpoint (default: the started productsvc's admin listener + /metrics)")
	fs.StringVar(&cfg.CartMetricsURL, "cart-metrics-url", "", "cartsvc's Prometheus endpoint (default: the started cartsvc's admin listener + /metrics)")
	fs.StringVar(&cfg.Stack.BinDir, "bin-dir", "", "prebuilt productsvc and cartsvc binaries (default: go build them)")
	fs.StringVar(&productArgs, "productsvc-args", "", "extra flags for productsvc, space-separated")
	fs.StringVar(&cartArgs, "cartsvc-args", "", "extra flags for cartsvc, space-separated")
	fs.Usage = func() {
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "shopload soak runs mixed traffic and an event storm against a fresh stack, sampling both services'\nRSS and goroutines; it fails on growth, on any failed request, or on undelivered events.\n\nUsage: shopload soak [flags]\n\nFlags (each falls back to the environment variable shown):\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if cfg.Duration <= 0 || cfg.SampleEvery <= 0 || !(cfg.Rate > 0) || cfg.Products < 10 || cfg.Users < 1 || cfg.Lines < 1 || cfg.Lines > cfg.Products {
		return errors.New("--duration, --sample-every and --rate must be positive, --products at least 10, --users and --lines at least 1, --lines at most --products")
	}
	cfg.Stack.ProductArgs, cfg.Stack.CartArgs = strings.Fields(productArgs), strings.Fields(cartArgs)
	defer RemoveBuilt()
	res, err := Soak(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "soak: %s of traffic at %.0f/s; events drained %s after it\n", cfg.Duration, cfg.Rate, res.Drained.Round(time.Millisecond))
	if len(res.Failures) > 0 {
		return fmt.Errorf("soak failed:\n  %s", strings.Join(res.Failures, "\n  "))
	}
	fmt.Fprintln(stdout, "soak passed: no failed request, RSS and goroutines flat, every event delivered")
	return nil
}
