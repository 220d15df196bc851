package shopload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/pgcluster"
)

// StackConfig configures StartStack.
type StackConfig struct {
	// Dir holds the cluster, binaries and logs; "" makes a directory under
	// /tmp that Close removes.
	Dir string
	// BinDir holds prebuilt productsvc and cartsvc binaries; "" builds
	// them from ./cmd/productsvc and ./cmd/cartsvc of the module the
	// working directory is in.
	BinDir string
	// Users is how many shoppers the issuer knows (UserName(i)).
	Users int
	// ProductArgs and CartArgs are extra flags for productsvc and cartsvc
	// (e.g. --admin-addr).
	ProductArgs, CartArgs []string
	// CartProductURL is cartsvc's --product-url; default productsvc's URL
	// (a test puts a proxy in between).
	CartProductURL string
	// ProductAddr is productsvc's listen address; default a free port.
	ProductAddr string
	// NoCacheReplica adds a second cartsvc on the same database with its
	// caches off: the product cache expires at once (--product-cache-ttl
	// 1ns) and carts are not cached (--cart-cache-mb 0).
	NoCacheReplica bool
	// ProductReplicas and CartReplicas are how many of each service run
	// (default 1, more: see replicas.go); with more than one, cartsvc calls
	// productsvc, and the relays cartsvc, through a BalancingProxy.
	ProductReplicas, CartReplicas int
	// PgBouncer puts a transaction-mode PgBouncer between the services'
	// pools and PostgreSQL (--database-exec-mode describe); LISTEN and
	// migrations keep the direct URL.
	PgBouncer bool
	// RelayLease is productsvc's --relay-lease once events are on;
	// default productsvc's own.
	RelayLease time.Duration
	// DrainDelay is every service's --drain-delay; default 0.
	DrainDelay time.Duration
	// Log receives progress lines; default discard.
	Log io.Writer
}

// Stack is the shop running on loopback: a durable PostgreSQL cluster,
// the dev issuer, productsvc (with its relay once events are on) and
// cartsvc as separate processes.
type Stack struct {
	cfg      StackConfig
	dir      string
	tempDir  bool
	pgOpts   pgcluster.Options
	pgMu     sync.Mutex
	pg       *pgcluster.Cluster
	Issuer   *devissuer.Issuer
	Products *Proc
	Cart     *Proc
	// CartNoCache is the cache-off replica (nil unless asked for).
	CartNoCache *Proc
	// ProductMetricsURL and CartMetricsURL are the services' admin
	// listeners' /metrics (each process gets a free admin port).
	ProductMetricsURL, CartMetricsURL string
	// ProductDB, CartDB and BenchDB are superuser URLs of productsvc's and
	// cartsvc's databases and of a database for the raw baselines.
	ProductDB, CartDB, BenchDB string

	productBase []string
	productBin  string
	replicas
}

// Cluster names of the services' databases and roles, as the dev stack has them.
const (
	productDBName = "product"
	cartDBName    = "cart"
	benchDBName   = "loadbench"
)

// AdminUser is the issuer's admin (role admin).
const AdminUser = "admin"

// UserName is the name of shopper i.
func UserName(i int) string { return fmt.Sprintf("load%05d", i) }

// StartStack starts everything; productsvc starts without subscribers
// (seed without events, then EnableEvents). Close stops it all.
func StartStack(ctx context.Context, cfg StackConfig) (_ *Stack, err error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	s := &Stack{cfg: cfg, dir: cfg.Dir}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.makeDir(); err != nil {
		return nil, err
	}
	binDir := cfg.BinDir
	if binDir == "" {
		if binDir, err = builtBinaries(ctx, cfg.Log); err != nil {
			return nil, err
		}
	}
	if err := s.startPostgres(ctx); err != nil {
		return nil, err
	}
	if err := s.startIssuer(); err != nil {
		return nil, err
	}
	if err := s.startServices(ctx, binDir); err != nil {
		return nil, err
	}
	return s, nil
}

// makeDir makes the stack's directory (unless given) and its logs.
func (s *Stack) makeDir() error {
	if s.dir == "" {
		// Short, and outside /root: the socket path must fit in ~107
		// bytes, and as root the server runs as the postgres user.
		var err error
		if s.dir, err = os.MkdirTemp("/tmp", "shopload-"); err != nil {
			return err
		}
		s.tempDir = true
		// As root the server runs as the postgres user, who must reach
		// the cluster directory inside.
		if err := os.Chmod(s.dir, 0o755); err != nil {
			return err
		}
	}
	return os.MkdirAll(filepath.Join(s.dir, "logs"), 0o755)
}

// startPostgres starts the durable cluster and creates the services'
// databases and the baselines' one.
func (s *Stack) startPostgres(ctx context.Context) (err error) {
	pgBin, err := pgcluster.FindBinDir(os.Getenv("PG_BIN"), pgcluster.DebianBinGlob, os.Getenv("PATH"))
	if err != nil {
		return err
	}
	s.pgOpts = pgcluster.Options{BinDir: pgBin, Dir: filepath.Join(s.dir, "pg"), MaxConnections: 200}
	fmt.Fprintln(s.cfg.Log, "starting PostgreSQL (durable: fsync on) …")
	if s.pg, err = pgcluster.Start(ctx, s.pgOpts); err != nil {
		return err
	}
	if s.ProductDB, err = s.createDatabase(ctx, "productsvc", productDBName); err != nil {
		return err
	}
	if s.CartDB, err = s.createDatabase(ctx, "cartsvc", cartDBName); err != nil {
		return err
	}
	s.BenchDB, err = s.createDatabase(ctx, "", benchDBName)
	return err
}

// startIssuer starts the dev issuer, knowing the admin and the shoppers.
func (s *Stack) startIssuer() (err error) {
	issCfg := devissuer.DemoConfig()
	issCfg.TokenTTL = 6 * time.Hour // outlives any run
	issCfg.Logger = discardLogger()
	issCfg.Users[AdminUser] = devissuer.User{Password: AdminUser, Roles: []string{"admin"}}
	for i := range s.cfg.Users {
		// The demo convention: the password is the name.
		issCfg.Users[UserName(i)] = devissuer.User{Password: UserName(i)}
	}
	s.Issuer, err = devissuer.Start(issCfg, "127.0.0.1:0")
	return err
}

// freeAddrs returns n free loopback addresses (FreeAddr).
func freeAddrs(n int) ([]string, error) {
	addrs := make([]string, n)
	for i := range addrs {
		var err error
		if addrs[i], err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	return addrs, nil
}

// startServices starts productsvc and cartsvc from binDir (their replicas
// and the cache-off replica too, if asked for).
func (s *Stack) startServices(ctx context.Context, binDir string) error {
	productAddr := s.cfg.ProductAddr
	if productAddr == "" {
		var err error
		if productAddr, err = FreeAddr(); err != nil {
			return err
		}
	}
	addrs, err := freeAddrs(3)
	if err != nil {
		return err
	}
	cartAddr, productAdmin, cartAdmin := addrs[0], addrs[1], addrs[2]
	s.ProductMetricsURL, s.CartMetricsURL = "http://"+productAdmin+"/metrics", "http://"+cartAdmin+"/metrics"
	productURL := "http://" + productAddr
	if err := s.prepareReplicas(ctx, productAddr, cartAddr); err != nil {
		return err
	}
	cartProductURL := s.cfg.CartProductURL
	if cartProductURL == "" {
		cartProductURL = s.productURLForCarts(productURL)
	}
	s.productBin = filepath.Join(binDir, "productsvc")
	s.productBase = append(append([]string{
		"--addr", productAddr, "--admin-addr", productAdmin, "--database-url", s.roleURL("productsvc", productDBName),
		"--oidc-issuer-url", s.Issuer.URL(), "--drain-delay", s.cfg.DrainDelay.String(), "--shutdown-timeout", "5s", "--log-level", "warn",
	}, s.databaseArgs("productsvc", productDBName)...), s.cfg.ProductArgs...)
	s.Products = NewProc("productsvc", s.productBin, s.productBase, s.logPath("productsvc"), productURL)
	cartArgs := s.cartArgs(cartProductURL)
	s.Cart = NewProc("cartsvc", filepath.Join(binDir, "cartsvc"), cartArgs(cartAddr, cartAdmin), s.logPath("cartsvc"), "http://"+cartAddr)
	fmt.Fprintln(s.cfg.Log, "starting productsvc and cartsvc …")
	if err := s.Products.Start(time.Minute); err != nil {
		return err
	}
	if err := s.Cart.Start(time.Minute); err != nil {
		return err
	}
	if err := s.startReplicas(cartArgs); err != nil {
		return err
	}
	if s.cfg.NoCacheReplica {
		return s.startNoCache(binDir, cartArgs)
	}
	return nil
}

// cartArgs returns the flags of a cartsvc listening on addr and admin,
// calling productsvc at productURL, with extra flags.
func (s *Stack) cartArgs(productURL string) func(addr, admin string, extra ...string) []string {
	return func(addr, admin string, extra ...string) []string {
		args := []string{
			"--addr", addr, "--admin-addr", admin, "--database-url", s.roleURL("cartsvc", cartDBName),
			"--oidc-issuer-url", s.Issuer.URL(), "--product-url", productURL,
			"--drain-delay", s.cfg.DrainDelay.String(), "--shutdown-timeout", "5s", "--log-level", "warn",
		}
		args = append(args, s.databaseArgs("cartsvc", cartDBName)...)
		return append(append(args, s.cfg.CartArgs...), extra...)
	}
}

// startNoCache starts the cache-off cartsvc replica (CartNoCache).
func (s *Stack) startNoCache(binDir string, cartArgs func(addr, admin string, extra ...string) []string) error {
	addrs, err := freeAddrs(2)
	if err != nil {
		return err
	}
	addr, admin := addrs[0], addrs[1]
	s.CartNoCache = NewProc("cartsvc-nocache", filepath.Join(binDir, "cartsvc"),
		cartArgs(addr, admin, "--product-cache-ttl", "1ns", "--cart-cache-mb", "0"), s.logPath("cartsvc-nocache"), "http://"+addr)
	return s.CartNoCache.Start(time.Minute)
}

// EnableEvents restarts productsvc with cartsvc as its subscriber, so
// catalog changes go through the outbox and the relay from now on, as in
// the dev stack, with the relay's default lease unless
// StackConfig.RelayLease says otherwise.
func (s *Stack) EnableEvents() error {
	relayArgs := []string{
		"--subscribers", "cartsvc=" + s.cartURLForRelays(s.Cart.URL()),
		"--relay-client-id", devissuer.DemoRelayClient, "--relay-client-secret", devissuer.DemoRelaySecret,
	}
	if s.cfg.RelayLease > 0 {
		relayArgs = append(relayArgs, "--relay-lease", s.cfg.RelayLease.String())
	}
	s.Products.Stop()
	s.Products = NewProc("productsvc", s.productBin, append(append([]string{}, s.productBase...), relayArgs...), s.logPath("productsvc"), s.Products.URL())
	if err := s.Products.Start(time.Minute); err != nil {
		return err
	}
	return s.enableReplicaEvents(relayArgs)
}

// Procs returns the services' processes.
func (s *Stack) Procs() []*Proc {
	procs := []*Proc{s.Products, s.Cart}
	if s.CartNoCache != nil {
		procs = append(procs, s.CartNoCache)
	}
	return append(procs, s.extraProcs()...)
}

// LogDir holds the services' logs.
func (s *Stack) LogDir() string { return filepath.Join(s.dir, "logs") }

func (s *Stack) logPath(name string) string { return filepath.Join(s.dir, "logs", name+".log") }

// Close stops every part and removes a temporary directory.
func (s *Stack) Close() {
	for _, p := range append([]*Proc{s.Products, s.Cart, s.CartNoCache}, s.extraProcs()...) {
		if p != nil {
			p.Stop()
		}
	}
	s.closeReplicas()
	if s.Issuer != nil {
		s.Issuer.Close()
	}
	s.pgMu.Lock()
	if s.pg != nil {
		s.pg.Stop()
	}
	s.pgMu.Unlock()
	if s.tempDir {
		os.RemoveAll(s.dir)
	}
}

// handedOut holds the ports FreeAddr has returned in this process.
var handedOut sync.Map

// FreeAddr returns a loopback address whose port was free a moment ago,
// from below Linux's ephemeral range (so no outgoing connection takes it
// meanwhile), never the same twice in one process.
func FreeAddr() (string, error) {
	for range 100 {
		port := 20000 + rand.IntN(12000)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			ln.Close()
			return ln.Addr().String(), nil
		}
	}
	return "", errors.New("no free loopback port in 20000-31999 after 100 tries")
}
