package shopload

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
)

// BenchConfig is a benchmark run's size.
type BenchConfig struct {
	// Duration of each scenario in each repetition; StormDuration that of
	// the price-change storm (longer: its rate is meaningful only once
	// delivery has caught up with the writes).
	Duration, StormDuration time.Duration
	// Reps is how many times the baselines and scenarios run, interleaved.
	Reps int
	// Concurrency is the number of clients of each service scenario and
	// of the plain handler; DBWorkers those of the raw pgx baselines.
	Concurrency, DBWorkers int
	// MaxRequests bounds each scenario's requests in each repetition.
	MaxRequests int
	// Timeout of each request.
	Timeout time.Duration
	// Backlog is the outbox backlog's size in events; BacklogTimeout
	// bounds its drain (the rate is then what drained so far).
	Backlog        int
	BacklogTimeout time.Duration
	// SettleTimeout bounds the wait for the outbox to empty after a
	// scenario that writes events.
	SettleTimeout time.Duration
	// Only, if not empty, names the scenarios to run (baselines always run).
	Only []string
	// ProfileDir, if set, receives a CPU profile of each service (whose
	// Target.Pprof URL is known) during each scenario's first repetition:
	// DIR/SCENARIO-SERVICE.pprof.
	ProfileDir string
}

// Scenario names, in the order each repetition runs them.
const (
	ScenarioPlain          = "plain_http_json"
	ScenarioPGInsert       = "pg_insert"
	ScenarioPGSelect       = "pg_select"
	ScenarioGetProduct     = "get_product"
	ScenarioGetProductJSON = "get_product_json"
	ScenarioGetCartWarm    = "get_cart_warm"
	ScenarioGetCartCold    = "get_cart_cold"
	ScenarioListProducts   = "list_products_query"
	ScenarioAddCartItem    = "add_cart_item"
	ScenarioUpdateProduct  = "update_product"
	ScenarioPriceStorm     = "price_storm"
	ScenarioBacklog        = "backlog"
)

// scenarioTitles describe each scenario in reports.
var scenarioTitles = map[string]string{
	ScenarioPlain:          "baseline: plain net/http JSON handler (product by id from a map)",
	ScenarioPGInsert:       "baseline: raw pgx single-row INSERT, autocommit",
	ScenarioPGSelect:       "baseline: raw pgx SELECT by primary key",
	ScenarioGetProduct:     "GetProduct, binary protobuf, anonymous, warm read cache (every product read once before)",
	ScenarioGetProductJSON: "GetProduct, Connect JSON, anonymous, warm read cache",
	ScenarioGetCartWarm:    "GetCart, 20 lines, warm product and cart caches",
	ScenarioGetCartCold:    "GetCart, 20 lines, caches off (a replica with --product-cache-ttl 1ns --cart-cache-mb 0)",
	ScenarioListProducts:   "ListProducts with a search query, page of 20 (the same request each time: after the first, productsvc's read cache answers it until a product changes)",
	ScenarioAddCartItem:    "AddCartItem (+1 on a line, with request_id)",
	ScenarioUpdateProduct:  "UpdateProduct price (with its outbox row)",
	ScenarioPriceStorm:     "price-change storm on carted products: events applied in carts",
	ScenarioBacklog:        "outbox backlog drained and applied (cartsvc frozen while it builds)",
}

// Scenarios lists every scenario name in run order.
func Scenarios() []string {
	return []string{ScenarioPlain, ScenarioPGInsert, ScenarioPGSelect, ScenarioGetProduct, ScenarioGetProductJSON,
		ScenarioGetCartWarm, ScenarioGetCartCold, ScenarioListProducts, ScenarioAddCartItem, ScenarioUpdateProduct,
		ScenarioPriceStorm, ScenarioBacklog}
}

// bench is a benchmark run in progress.
type bench struct {
	cfg         BenchConfig
	tg          *Target
	shop        *Shop
	plain       *PlainServer
	plainClient *http.Client
	raw         *RawDB
	productPool *pgxpool.Pool
	cartPool    *pgxpool.Pool
	watched     []watched
	log         io.Writer
	renames     int
	busyShare   float64 // the stack's CPU share in quiesce's last window
}

// RunBench runs cfg.Reps repetitions of every baseline and scenario
// against a started, seeded stack and returns the results by scenario.
func RunBench(ctx context.Context, cfg BenchConfig, tg *Target, shop *Shop, log io.Writer) (map[string][]RepResult, error) {
	b := &bench{cfg: cfg, tg: tg, shop: shop, log: log, plainClient: NewHTTPClient(cfg.Concurrency)}
	var err error
	if b.plain, err = StartPlainServer(len(shop.ProductIDs)); err != nil {
		return nil, err
	}
	defer b.plain.Close()
	if tg.BenchDB != "" {
		if b.raw, err = OpenRawDB(ctx, tg.BenchDB, cfg.DBWorkers); err != nil {
			return nil, err
		}
		defer b.raw.Close()
	}
	if tg.ProductDB != "" && tg.CartDB != "" {
		if b.productPool, err = pgxpool.New(ctx, tg.ProductDB); err != nil {
			return nil, err
		}
		defer b.productPool.Close()
		if b.cartPool, err = pgxpool.New(ctx, tg.CartDB); err != nil {
			return nil, err
		}
		defer b.cartPool.Close()
	}
	b.watched = append(slices.Clone(tg.watched), watched{name: "shopload", pid: syscall.Getpid})
	results := map[string][]RepResult{}
	for rep := 1; rep <= cfg.Reps; rep++ {
		for _, name := range Scenarios() {
			if !b.wanted(name) {
				continue
			}
			if tg.Analyze != nil {
				// Statistics as autovacuum keeps them in a running shop:
				// without this, plans cached while a table was empty
				// (the inbox, request results, version marks) outlive
				// its growth within a scenario.
				if err := tg.Analyze(ctx); err != nil {
					return nil, err
				}
			}
			waited, idle := b.quiesce(ctx)
			stop := b.profile(ctx, name, rep)
			r, err := b.run(ctx, name)
			stop()
			if err != nil {
				return nil, fmt.Errorf("%s, repetition %d: %w", name, rep, err)
			}
			r.Rep = rep
			if !idle {
				r.addNote("the stack was still busy (%.0f%% of a core) after waiting %s before it", b.busyShare*100, quiesceTimeout)
			} else if waited > 2*quiesceWindow {
				r.addNote("waited %s for the stack to be idle before it", waited.Round(10*time.Millisecond))
			}
			results[name] = append(results[name], r)
			fmt.Fprintf(log, "rep %d  %-20s %s\n", rep, name, r.line())
		}
	}
	return results, nil
}

func (b *bench) wanted(name string) bool {
	switch name {
	case ScenarioPlain, ScenarioPGInsert, ScenarioPGSelect:
		return true
	}
	return len(b.cfg.Only) == 0 || slices.Contains(b.cfg.Only, name)
}

func (b *bench) run(ctx context.Context, name string) (RepResult, error) {
	s := b.shop
	c := b.cfg.Concurrency
	if skip := b.missing(name); skip != "" {
		return RepResult{Note: "skipped: " + skip}, nil
	}
	switch name {
	case ScenarioPlain:
		return b.closed(ctx, c, b.plain.Op(b.plainClient)), nil
	case ScenarioPGInsert:
		return b.closed(ctx, b.cfg.DBWorkers, b.raw.Insert()), nil
	case ScenarioPGSelect:
		return b.closed(ctx, b.cfg.DBWorkers, b.raw.Select()), nil
	case ScenarioGetProduct:
		b.warmProducts(ctx)
		return b.closed(ctx, c, s.GetProduct(false)), nil
	case ScenarioGetProductJSON:
		b.warmProducts(ctx)
		return b.closed(ctx, c, s.GetProduct(true)), nil
	case ScenarioGetCartWarm:
		b.warmCarts(ctx)
		return b.closed(ctx, c, s.GetCart(s.Clients.Cart, nil)), nil
	case ScenarioGetCartCold:
		return b.closed(ctx, c, s.GetCart(s.Clients.CartNoCache, nil)), nil
	case ScenarioListProducts:
		return b.closed(ctx, c, s.ListProducts()), nil
	case ScenarioAddCartItem:
		return b.closed(ctx, c, s.AddCartItem(NoRetry, nil)), nil
	case ScenarioUpdateProduct:
		r := b.closed(ctx, c, s.UpdateProduct(s.ProductIDs, NoRetry, nil))
		b.settle(ctx, &r)
		return r, nil
	case ScenarioPriceStorm:
		return b.storm(ctx)
	case ScenarioBacklog:
		return b.backlog(ctx)
	}
	return RepResult{}, fmt.Errorf("unknown scenario %q", name)
}

// missing says what a scenario needs that the target lacks ("" if nothing).
func (b *bench) missing(name string) string {
	switch name {
	case ScenarioPGInsert, ScenarioPGSelect:
		if b.raw == nil {
			return "no database for the raw baselines"
		}
	case ScenarioGetCartCold:
		if b.shop.Clients.CartNoCache == nil {
			return "no cache-off cartsvc"
		}
	case ScenarioPriceStorm, ScenarioBacklog:
		if b.productPool == nil {
			return "the services' databases are unknown"
		}
		if name == ScenarioBacklog && b.tg.FreezeCart == nil {
			return "cartsvc cannot be frozen"
		}
	}
	return ""
}

// warmCarts reads every cart once, so the product cache holds them all.
func (b *bench) warmCarts(ctx context.Context) {
	_ = parallel(ctx, len(b.shop.Users), 8, func(ctx context.Context, i int) error {
		_, _ = b.shop.Clients.Cart.GetCart(ctx, authed(&cartv1.GetCartRequest{}, b.shop.Users[i].Auth))
		return nil
	})
}

// warmProducts reads every product once, so productsvc's read cache holds
// them all (the scenarios before may have changed them, which drops them).
func (b *bench) warmProducts(ctx context.Context) {
	_ = parallel(ctx, len(b.shop.ProductIDs), 8, func(ctx context.Context, i int) error {
		_, _ = b.shop.Clients.Products.GetProduct(ctx, connect.NewRequest(&productv1.GetProductRequest{Id: b.shop.ProductIDs[i]}))
		return nil
	})
}

// observation is what is read around a measured load.
type observation struct {
	began time.Time
	cpu   cpuSnapshot
	cart  Metrics
}

func (b *bench) observe(ctx context.Context) observation {
	o := b.observeCPU()
	if b.tg.CartMetricsURL != "" {
		o.cart = Scrape(ctx, b.plainClient, b.tg.CartMetricsURL)
	}
	return o
}

// observeCPU is observe without asking cartsvc (which may be frozen).
func (b *bench) observeCPU() observation {
	return observation{began: time.Now(), cpu: snapshotCPU(b.watched)}
}

// result turns a load's stats and what was observed around it into a
// repetition's result; cost is the number of requests (or events) CPU is
// divided by.
func (b *bench) result(ctx context.Context, before observation, st *Stats, cost int) RepResult {
	after := b.observe(ctx)
	r := RepResult{
		Requests: st.OK, Failed: st.Failed, Errors: st.Errors, Seconds: st.Elapsed.Seconds(), RPS: st.RPS(),
		P50Ms: ms(st.Quantile(0.5)), P99Ms: ms(st.Quantile(0.99)),
		CPUPerRequestUs: perRequest(before.cpu, after.cpu, cost),
		RSSMB:           map[string]float64{},
	}
	for _, w := range b.tg.watched {
		if pid := w.pid(); pid != 0 && !w.tree {
			r.RSSMB[w.name] = float64(rss(pid)) / (1 << 20)
		}
	}
	if ratio, ok := cacheHitRatio(before.cart, after.cart); ok {
		r.CacheHitRatio = &ratio
	}
	return r
}

func (b *bench) closed(ctx context.Context, conc int, op Op) RepResult {
	before := b.observe(ctx)
	st := Closed(ctx, conc, b.cfg.Duration, b.cfg.MaxRequests, b.cfg.Timeout, op)
	return b.result(ctx, before, st, st.OK+st.Failed)
}

// Quiescence before each scenario: background work that an earlier
// scenario left behind (autovacuum, a checkpoint, the relay finishing a
// backlog) would otherwise be charged to the next scenario's requests.
const (
	quiesceWindow  = 250 * time.Millisecond
	quiesceTimeout = 15 * time.Second
	quiesceIdle    = 0.10 // of one core, all watched processes but shopload
)

// quiesce waits until the watched processes (services and PostgreSQL, not
// shopload) use less than quiesceIdle of a core over quiesceWindow, at
// most quiesceTimeout. It returns how long it waited and whether the stack
// became idle; b.busyShare keeps the last window's share.
func (b *bench) quiesce(ctx context.Context) (time.Duration, bool) {
	began := time.Now()
	for time.Since(began) < quiesceTimeout && ctx.Err() == nil {
		before := snapshotCPU(b.watched)
		time.Sleep(quiesceWindow)
		after := snapshotCPU(b.watched)
		var busy time.Duration
		for name, t := range after {
			if name != "shopload" && t >= before[name] {
				busy += t - before[name]
			}
		}
		b.busyShare = float64(busy) / float64(quiesceWindow)
		if b.busyShare < quiesceIdle {
			return time.Since(began), true
		}
	}
	return time.Since(began), false
}

// settle waits for the outbox to empty, noting in r how long it took.
func (b *bench) settle(ctx context.Context, r *RepResult) {
	began := time.Now()
	left, err := waitOutboxEmpty(ctx, b.productPool, b.cfg.SettleTimeout)
	switch {
	case err != nil:
		r.addNote("outbox unreadable: %v", err)
	case left > 0:
		r.addNote("%d events still queued %s after the load", left, b.cfg.SettleTimeout)
	default:
		r.SettleSeconds = time.Since(began).Seconds()
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func ptr[T any](v T) *T { return &v }
