// Package devstack runs the whole shop on one machine for development: a
// local PostgreSQL cluster (or given databases), the dev OIDC issuer,
// productsvc with its event relay, cartsvc and the storefront, seeded with
// demo data. cmd/shopdev is its command.
package devstack

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/envflag"
	"github.com/decoupledshop/shop/internal/pgcluster"
)

// config is the stack's configuration from flags (each with an environment
// fallback, e.g. --products-addr → SHOPDEV_PRODUCTS_ADDR).
type config struct {
	dataDir      string
	productDBURL string
	cartDBURL    string
	issuerAddr   string
	productsAddr string
	cartAddr     string
	webAddr      string
	seed         bool

	productsAdminAddr string
	cartAdminAddr     string
	prometheusAddr    string
	prometheus        bool
}

func (c *config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.dataDir, "data-dir", defaultDataDir(), "where the local PostgreSQL cluster and the logs live (kept between runs)")
	fs.StringVar(&c.productDBURL, "product-database-url", "", "use this database for productsvc instead of the local cluster")
	fs.StringVar(&c.cartDBURL, "cart-database-url", "", "use this database for cartsvc instead of the local cluster")
	fs.StringVar(&c.issuerAddr, "issuer-addr", "127.0.0.1:8090", "dev OIDC issuer address (loopback only)")
	fs.StringVar(&c.productsAddr, "products-addr", "127.0.0.1:8081", "productsvc address")
	fs.StringVar(&c.cartAddr, "cart-addr", "127.0.0.1:8082", "cartsvc address")
	fs.StringVar(&c.webAddr, "web-addr", "127.0.0.1:8080", "storefront address")
	fs.BoolVar(&c.seed, "seed", true, "seed demo categories, products and a promo code into empty databases")
	fs.StringVar(&c.productsAdminAddr, "products-admin-addr", "127.0.0.1:9081", "productsvc's admin listener (/metrics, /debug/pprof/)")
	fs.StringVar(&c.cartAdminAddr, "cart-admin-addr", "127.0.0.1:9082", "cartsvc's admin listener (/metrics, /debug/pprof/)")
	fs.StringVar(&c.prometheusAddr, "prometheus-addr", "127.0.0.1:9090", "Prometheus address (when the prometheus binary is installed)")
	fs.BoolVar(&c.prometheus, "prometheus", true, "run Prometheus, scraping both services with the shop's alert rules, when the prometheus binary is installed")
}

// Run runs the stack until ctx is cancelled (Ctrl-C), then stops every part
// and returns nil. "shopdev token --user NAME" prints an access token from
// the running stack's issuer instead. Errors are one line saying what to do.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "token" {
		return runToken(ctx, args[1:], getenv, stdout, stderr)
	}
	fs := flag.NewFlagSet("shopdev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	cfg.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "shopdev runs the whole shop locally (development only).\n\nUsage:\n  shopdev [flags]            run everything; Ctrl-C stops it\n  shopdev token --user NAME  print an access token (alice, bob or admin)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := envflag.ParsePrefixed(fs, args, "SHOPDEV_", getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	pgBinDir, logDir, err := cfg.preflight(getenv)
	if err != nil {
		return err
	}

	productURL, cartURL := cfg.productDBURL, cfg.cartDBURL
	if productURL == "" {
		cluster, err := startPostgres(ctx, cfg.dataDir, pgBinDir)
		if err != nil {
			return err
		}
		defer cluster.Stop()
		productURL, cartURL = cluster.URL(productDB.role, productDB.name), cluster.URL(cartDB.role, cartDB.name)
		watchCluster(ctx, cluster, stderr)
	}

	issCfg := devissuer.DemoConfig()
	// Kept with the data, so tokens outlive a restart of the stack.
	issCfg.KeyFile = filepath.Join(cfg.dataDir, "issuer-keys.json")
	iss, err := devissuer.Start(issCfg, cfg.issuerAddr)
	if err != nil {
		return err
	}
	defer iss.Close()

	s := &stack{cfg: cfg, iss: iss, logDir: logDir, productDBURL: productURL, cartDBURL: cartURL}
	return s.run(ctx, stdout)
}

// preflight checks what can be checked before anything starts, the
// quickest first: the database flags, PostgreSQL's binaries (pgBinDir,
// unless databases are given), then the ports; and creates the log
// directory.
func (cfg *config) preflight(getenv func(string) string) (pgBinDir, logDir string, err error) {
	if (cfg.productDBURL == "") != (cfg.cartDBURL == "") {
		return "", "", errors.New("pass both --product-database-url and --cart-database-url, or neither to use the local cluster")
	}
	if cfg.productDBURL == "" {
		if pgBinDir, err = findPostgres(getenv("PG_BIN")); err != nil {
			return "", "", err
		}
	}
	addrs := map[string]string{"--issuer-addr": cfg.issuerAddr, "--products-addr": cfg.productsAddr, "--cart-addr": cfg.cartAddr, "--web-addr": cfg.webAddr,
		"--products-admin-addr": cfg.productsAdminAddr, "--cart-admin-addr": cfg.cartAdminAddr}
	if cfg.findPrometheus() != "" {
		addrs["--prometheus-addr"] = cfg.prometheusAddr
	}
	for name, addr := range addrs {
		if err := checkFree(addr); err != nil {
			return "", "", fmt.Errorf("%s %s is busy (%v): stop what uses it or pass another address with %s", name, addr, err, name)
		}
	}
	logDir = filepath.Join(cfg.dataDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return "", "", fmt.Errorf("create %s: %w", logDir, err)
	}
	return pgBinDir, logDir, nil
}

// watchCluster reports if the local PostgreSQL exits while the stack runs.
func watchCluster(ctx context.Context, c *pgcluster.Cluster, stderr io.Writer) {
	go func() {
		select {
		case <-c.Exited():
			if ctx.Err() == nil {
				fmt.Fprintf(stderr, "shopdev: local PostgreSQL exited unexpectedly; its log:\n%s\n", c.Log())
			}
		case <-ctx.Done():
		}
	}()
}

// checkFree reports whether addr can be listened on now.
func checkFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Err != nil {
			return opErr.Err
		}
		return err
	}
	return ln.Close()
}

// stack is a running dev stack's parts.
type stack struct {
	cfg          config
	iss          *devissuer.Issuer
	logDir       string
	productDBURL string
	cartDBURL    string
}

// part is one long-running piece of the stack.
type part struct {
	name  string
	ready string // URL answering 200 when ready; "" if none
	run   func(ctx context.Context) error
}

func (s *stack) run(ctx context.Context, stdout io.Writer) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	parts, err := s.parts()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Go(func() {
			if err := p.run(ctx); err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("%s: %w (log: %s)", p.name, err, filepath.Join(s.logDir, p.name+".log")))
			}
		})
	}
	defer wg.Wait()
	for _, p := range parts {
		if p.ready == "" {
			continue
		}
		if err := waitReady(ctx, p.ready, time.Minute); err != nil {
			cancel(fmt.Errorf("%s did not become ready: %w (log: %s)", p.name, err, filepath.Join(s.logDir, p.name+".log")))
			wg.Wait()
			return context.Cause(ctx)
		}
	}
	if s.cfg.seed {
		if err := s.seed(ctx); err != nil {
			cancel(fmt.Errorf("seed demo data: %w", err))
			wg.Wait()
			return context.Cause(ctx)
		}
	}
	s.printWelcome(stdout, s.exampleProduct(ctx))
	<-ctx.Done()
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// logFile opens a part's log in the stack's log directory.
func (s *stack) logFile(name string) (*os.File, error) {
	return os.OpenFile(filepath.Join(s.logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

func baseURL(addr string) string { return "http://" + addr }

// waitReady polls url until it answers 200.
func waitReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// exampleProduct returns a catalog product to show in the welcome text
// (the demo trail runner when it is there), or nil.
func (s *stack) exampleProduct(ctx context.Context) *productv1.Product {
	client := productv1connect.NewProductServiceClient(http.DefaultClient, baseURL(s.cfg.productsAddr))
	query := "runner"
	for _, q := range []*string{&query, nil} {
		resp, err := client.ListProducts(ctx, connect.NewRequest(&productv1.ListProductsRequest{Query: q, PageSize: 1}))
		if err == nil && len(resp.Msg.Products) > 0 {
			return resp.Msg.Products[0]
		}
	}
	return nil
}

// prometheusLine is the welcome text's Prometheus line: where it runs, or
// how to get it.
func (s *stack) prometheusLine() string {
	switch {
	case !s.cfg.prometheus:
		return "off (--prometheus=false)"
	case s.cfg.findPrometheus() == "":
		return prometheusHint
	}
	return baseURL(s.cfg.prometheusAddr) + "   (alerts: /alerts, rules: /rules; data under " + filepath.Join(s.cfg.dataDir, "prometheus") + ")"
}

func (s *stack) printWelcome(w io.Writer, example *productv1.Product) {
	p, c, web, iss := baseURL(s.cfg.productsAddr), baseURL(s.cfg.cartAddr), baseURL(s.cfg.webAddr), s.iss.URL()
	lines := []string{
		"",
		"shop is running; Ctrl-C stops everything.",
		"",
		"  storefront  " + web + "   (log in as alice/alice, bob/bob or admin/admin; promo code " + DemoPromoCode + ")",
		"  productsvc  " + p,
		"  cartsvc     " + c,
		"  issuer      " + iss + "   (development only)",
		"  data, logs  " + s.cfg.dataDir,
		"  metrics     " + baseURL(s.cfg.productsAdminAddr) + "/metrics  " + baseURL(s.cfg.cartAdminAddr) + "/metrics   (and /debug/pprof/)",
		"  prometheus  " + s.prometheusLine(),
		"",
		"Get a token (alice, bob or admin):",
		"  TOKEN=$(go run ./cmd/shopdev token --user alice)",
		"  # or the password grant: curl -s -d grant_type=password -d client_id=" + devissuer.WebClientID + " -d username=alice -d password=alice " + iss + "/token",
		"",
		"Try:",
		"  curl -s " + p + "/shop.product.v1.ProductService/ListProducts -H 'Content-Type: application/json' -d '{\"pageSize\": 3}'",
		"  curl -s " + c + "/shop.cart.v1.CartService/GetCart -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{}'",
		"",
	}
	if example != nil {
		lines = append(lines,
			"Change a price as admin (carts holding "+example.Name+" flag it within a second):",
			"  ADMIN=$(go run ./cmd/shopdev token --user admin)",
			"  curl -s "+p+"/shop.product.v1.ProductService/UpdateProduct -H \"Authorization: Bearer $ADMIN\" -H 'Content-Type: application/json' \\",
			"    -d '{\"product\": {\"id\": \""+example.Id+"\", \"price\": {\"currencyCode\": \"EUR\", \"amountMinor\": \"7999\"}}, \"updateMask\": \"price\"}'",
			"",
		)
	}
	fmt.Fprintln(w, strings.Join(lines, "\n"))
}
