package shopload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

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
	// NoCacheReplica adds a second cartsvc on the same database whose
	// product cache expires at once (--product-cache-ttl 1ns): GetCart
	// with the cache off.
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
	if s.dir == "" {
		// Short, and outside /root: the socket path must fit in ~107
		// bytes, and as root the server runs as the postgres user.
		if s.dir, err = os.MkdirTemp("/tmp", "shopload-"); err != nil {
			return nil, err
		}
		s.tempDir = true
		// As root the server runs as the postgres user, who must reach
		// the cluster directory inside.
		if err := os.Chmod(s.dir, 0o755); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := os.MkdirAll(filepath.Join(s.dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	binDir := cfg.BinDir
	if binDir == "" {
		if binDir, err = builtBinaries(ctx, cfg.Log); err != nil {
			return nil, err
		}
	}
	pgBin, err := pgcluster.FindBinDir(os.Getenv("PG_BIN"), pgcluster.DebianBinGlob, os.Getenv("PATH"))
	if err != nil {
		return nil, err
	}
	s.pgOpts = pgcluster.Options{BinDir: pgBin, Dir: filepath.Join(s.dir, "pg"), MaxConnections: 200}
	fmt.Fprintln(cfg.Log, "starting PostgreSQL (durable: fsync on) …")
	if s.pg, err = pgcluster.Start(ctx, s.pgOpts); err != nil {
		return nil, err
	}
	s.ProductDB, err = s.createDatabase(ctx, "productsvc", productDBName)
	if err != nil {
		return nil, err
	}
	if s.CartDB, err = s.createDatabase(ctx, "cartsvc", cartDBName); err != nil {
		return nil, err
	}
	if s.BenchDB, err = s.createDatabase(ctx, "", benchDBName); err != nil {
		return nil, err
	}

	issCfg := devissuer.DemoConfig()
	issCfg.TokenTTL = 6 * time.Hour // outlives any run
	issCfg.Logger = discardLogger()
	issCfg.Users[AdminUser] = devissuer.User{Password: AdminUser, Roles: []string{"admin"}}
	for i := range cfg.Users {
		// The demo convention: the password is the name.
		issCfg.Users[UserName(i)] = devissuer.User{Password: UserName(i)}
	}
	if s.Issuer, err = devissuer.Start(issCfg, "127.0.0.1:0"); err != nil {
		return nil, err
	}

	productAddr := cfg.ProductAddr
	if productAddr == "" {
		if productAddr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	cartAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	productAdmin, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	cartAdmin, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	s.ProductMetricsURL, s.CartMetricsURL = "http://"+productAdmin+"/metrics", "http://"+cartAdmin+"/metrics"
	productURL := "http://" + productAddr
	if err := s.prepareReplicas(ctx, productAddr, cartAddr); err != nil {
		return nil, err
	}
	cartProductURL := cfg.CartProductURL
	if cartProductURL == "" {
		cartProductURL = s.productURLForCarts(productURL)
	}
	s.productBin = filepath.Join(binDir, "productsvc")
	s.productBase = append(append([]string{
		"--addr", productAddr, "--admin-addr", productAdmin, "--database-url", s.roleURL("productsvc", productDBName),
		"--oidc-issuer-url", s.Issuer.URL(), "--drain-delay", cfg.DrainDelay.String(), "--shutdown-timeout", "5s", "--log-level", "warn",
	}, s.databaseArgs("productsvc", productDBName)...), cfg.ProductArgs...)
	s.Products = NewProc("productsvc", s.productBin, s.productBase, s.logPath("productsvc"), productURL)
	cartArgs := func(addr, admin string, extra ...string) []string {
		args := []string{
			"--addr", addr, "--admin-addr", admin, "--database-url", s.roleURL("cartsvc", cartDBName),
			"--oidc-issuer-url", s.Issuer.URL(), "--product-url", cartProductURL,
			"--drain-delay", cfg.DrainDelay.String(), "--shutdown-timeout", "5s", "--log-level", "warn",
		}
		args = append(args, s.databaseArgs("cartsvc", cartDBName)...)
		return append(append(args, cfg.CartArgs...), extra...)
	}
	s.Cart = NewProc("cartsvc", filepath.Join(binDir, "cartsvc"), cartArgs(cartAddr, cartAdmin), s.logPath("cartsvc"), "http://"+cartAddr)
	fmt.Fprintln(cfg.Log, "starting productsvc and cartsvc …")
	if err := s.Products.Start(time.Minute); err != nil {
		return nil, err
	}
	if err := s.Cart.Start(time.Minute); err != nil {
		return nil, err
	}
	if err := s.startReplicas(cartArgs); err != nil {
		return nil, err
	}
	if cfg.NoCacheReplica {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		admin, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		s.CartNoCache = NewProc("cartsvc-nocache", filepath.Join(binDir, "cartsvc"),
			cartArgs(addr, admin, "--product-cache-ttl", "1ns"), s.logPath("cartsvc-nocache"), "http://"+addr)
		if err := s.CartNoCache.Start(time.Minute); err != nil {
			return nil, err
		}
	}
	return s, nil
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

// PostmasterPid is the PostgreSQL server's process id (0 if unknown).
func (s *Stack) PostmasterPid() int {
	raw, err := os.ReadFile(filepath.Join(s.pgOpts.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := bytes.Cut(raw, []byte("\n"))
	pid, _ := strconv.Atoi(string(first))
	return pid
}

// RestartPostgres is `pg_ctl restart -m immediate`: SIGQUIT to the
// postmaster (no checkpoint; crash recovery at the next start), then a
// start in the same directory. It returns when the server accepts
// connections again, and when that was.
func (s *Stack) RestartPostgres(ctx context.Context) (ready time.Time, err error) {
	s.pgMu.Lock()
	defer s.pgMu.Unlock()
	pid := s.PostmasterPid()
	if pid == 0 {
		return time.Time{}, errors.New("no postmaster.pid")
	}
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		return time.Time{}, err
	}
	select {
	case <-s.pg.Exited():
	case <-time.After(30 * time.Second):
		return time.Time{}, errors.New("postgres did not exit within 30 s of an immediate shutdown")
	}
	if s.pg, err = pgcluster.Start(ctx, s.pgOpts); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

// postgresVersion is the server's version string, or "unknown".
func postgresVersion(ctx context.Context, url string) string {
	if url == "" {
		return "unknown"
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "unknown"
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "unknown"
	}
	return v
}

// Analyze updates the planner's statistics of both services' databases:
// of every table that holds rows. An empty table is left alone: analyzed
// while empty, the planner takes it for empty until its next analysis and
// plans a scan of all of it (autovacuum does not analyze a table before
// it has changed by 50 rows either).
func (s *Stack) Analyze(ctx context.Context) error {
	for _, url := range []string{s.ProductDB, s.CartDB} {
		if err := analyzeFilled(ctx, url); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
	}
	return nil
}

func analyzeFilled(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables WHERE n_live_tup > 0`)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, t := range tables {
		if _, err := conn.Exec(ctx, "ANALYZE "+t); err != nil {
			return err
		}
	}
	return nil
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

// roleURL is the URL role uses for db.
func (s *Stack) roleURL(role, db string) string { return s.pg.URL(role, db) }

// createDatabase creates db owned by role (the superuser when role is ""),
// which alone may connect, as the dev stack does, and returns the
// superuser's URL for it.
func (s *Stack) createDatabase(ctx context.Context, role, db string) (string, error) {
	conn, err := pgx.Connect(ctx, s.pg.SuperuserURL())
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	n := pgx.Identifier{db}.Sanitize()
	stmts := []string{"CREATE DATABASE " + n}
	if role != "" {
		r := pgx.Identifier{role}.Sanitize()
		stmts = []string{
			"CREATE ROLE " + r + " LOGIN",
			"CREATE DATABASE " + n + " OWNER " + r,
			"REVOKE ALL ON DATABASE " + n + " FROM PUBLIC",
			"GRANT CONNECT, TEMPORARY ON DATABASE " + n + " TO " + r,
		}
	}
	for _, sql := range stmts {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return "", fmt.Errorf("%s: %w", sql, err)
		}
	}
	url := s.pg.URL("", db)
	if role != "" {
		dbConn, err := pgx.Connect(ctx, url)
		if err != nil {
			return "", err
		}
		defer dbConn.Close(ctx)
		if _, err := dbConn.Exec(ctx, "ALTER SCHEMA public OWNER TO "+pgx.Identifier{role}.Sanitize()); err != nil {
			return "", err
		}
	}
	return url, nil
}

// Build builds cmd/productsvc and cmd/cartsvc into dir, from the module
// the working directory is in.
func Build(ctx context.Context, dir string) error {
	for _, name := range []string{"productsvc", "cartsvc"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, name), "github.com/decoupledshop/shop/cmd/"+name)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/%s (run shopload inside the shop module, or pass --bin-dir): %w\n%s", name, err, out)
		}
	}
	return nil
}

// built holds the binaries StartStack builds, once per process until
// RemoveBuilt.
var built struct {
	mu  sync.Mutex
	dir string
}

func builtBinaries(ctx context.Context, log io.Writer) (string, error) {
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.dir != "" {
		return built.dir, nil
	}
	fmt.Fprintln(log, "building productsvc and cartsvc …")
	dir, err := os.MkdirTemp("", "shopload-bin-")
	if err != nil {
		return "", err
	}
	if err := Build(ctx, dir); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	built.dir = dir
	return dir, nil
}

// RemoveBuilt removes the binaries StartStack built for this process; a
// stack started afterwards builds them again.
func RemoveBuilt() {
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.dir != "" {
		os.RemoveAll(built.dir)
		built.dir = ""
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
