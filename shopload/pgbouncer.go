package shopload

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/decoupledshop/shop/internal/pgcluster"
)

// PgBouncerBin is where Debian installs PgBouncer (apt-get install pgbouncer).
const PgBouncerBin = "/usr/sbin/pgbouncer"

// PgBouncerConfig configures StartPgBouncer.
type PgBouncerConfig struct {
	// Bin is the pgbouncer binary; default PgBouncerBin.
	Bin string
	// Dir holds its configuration, log and pid file; as root it is handed
	// to the postgres user, like a cluster's directory.
	Dir string
	// ServerSocketDir is the directory of PostgreSQL's unix socket (port
	// 5432), where PgBouncer connects.
	ServerSocketDir string
	// Databases are the databases it pools, each under its own name.
	Databases []string
	// Users may log in (trusted, as the cluster trusts local connections).
	Users []string
	// PoolSize is each (database, user) pool's server connections
	// (default_pool_size); default 20.
	PoolSize int
}

// PgBouncer is a PgBouncer in transaction mode on a loopback port, run as
// a child process that dies with this one.
type PgBouncer struct {
	addr   string
	dir    string
	proc   *os.Process
	exited chan struct{}
}

// StartPgBouncer writes a transaction-mode configuration and starts
// PgBouncer, as the postgres user when root (it refuses to run as root),
// and returns once it accepts connections.
func StartPgBouncer(ctx context.Context, cfg PgBouncerConfig) (*PgBouncer, error) {
	if cfg.Bin == "" {
		cfg.Bin = PgBouncerBin
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = 20
	}
	if _, err := os.Stat(cfg.Bin); err != nil {
		return nil, fmt.Errorf("pgbouncer: %w (apt-get install pgbouncer)", err)
	}
	cred, _, err := pgcluster.ServerUser()
	if err != nil {
		return nil, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	if err := writePgBouncerConfig(cfg, addr, cred); err != nil {
		return nil, err
	}
	b := &PgBouncer{addr: addr, dir: cfg.Dir, exited: make(chan struct{})}
	if err := b.start(cfg.Bin, cred); err != nil {
		return nil, fmt.Errorf("start pgbouncer: %w", err)
	}
	if err := b.waitReady(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// writePgBouncerConfig writes pgbouncer.ini and users.txt into cfg.Dir,
// owned by cred's user (nil: ours), listening on addr.
func writePgBouncerConfig(cfg PgBouncerConfig, addr string, cred *syscall.Credential) error {
	host, port, _ := net.SplitHostPort(addr)
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return err
	}
	var dbs, users strings.Builder
	for _, db := range cfg.Databases {
		fmt.Fprintf(&dbs, "%s = host=%s port=5432 dbname=%s\n", db, cfg.ServerSocketDir, db)
	}
	for _, u := range cfg.Users {
		fmt.Fprintf(&users, "%q \"\"\n", u)
	}
	ini := fmt.Sprintf(`[databases]
%s
[pgbouncer]
listen_addr = %s
listen_port = %s
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 2000
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = %s
log_connections = 0
log_disconnections = 0
`, dbs.String(), host, port, filepath.Join(cfg.Dir, "users.txt"), cfg.PoolSize, filepath.Join(cfg.Dir, "pgbouncer.log"))
	files := map[string]string{"pgbouncer.ini": ini, "users.txt": users.String()}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(cfg.Dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if cred == nil {
		return nil
	}
	for _, p := range []string{cfg.Dir, filepath.Join(cfg.Dir, "pgbouncer.ini"), filepath.Join(cfg.Dir, "users.txt")} {
		if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	return nil
}

// start starts bin on the configuration in b.dir, as cred's user (nil:
// ours), killed when this process dies; b.exited closes when it exits.
func (b *PgBouncer) start(bin string, cred *syscall.Credential) error {
	cmd := exec.Command(bin, filepath.Join(b.dir, "pgbouncer.ini"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	started := make(chan error)
	go func() {
		// The parent-death signal fires when the starting thread exits
		// (go.dev/issue/27505): keep it for as long as the child lives.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(b.exited)
	}()
	if err := <-started; err != nil {
		return err
	}
	b.proc = cmd.Process
	return nil
}

// waitReady waits up to 10 s for b to accept connections, stopping it
// when it does not.
func (b *PgBouncer) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-b.exited:
			return fmt.Errorf("pgbouncer exited while starting; its log:\n%s", b.Log())
		case <-ctx.Done():
			b.Stop()
			return ctx.Err()
		default:
		}
		if c, err := net.DialTimeout("tcp", b.addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			b.Stop()
			return errors.New("pgbouncer not accepting connections within 10 s; its log:\n" + b.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL is the pooled URL of db for role (trusted: no password).
func (b *PgBouncer) URL(role, db string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", url.User(role), b.addr, url.PathEscape(db))
}

// Log is PgBouncer's log.
func (b *PgBouncer) Log() string {
	raw, _ := os.ReadFile(filepath.Join(b.dir, "pgbouncer.log"))
	return string(raw)
}

// Stop shuts PgBouncer down (SIGINT: at once) and waits for it.
func (b *PgBouncer) Stop() {
	if b.proc == nil {
		return
	}
	_ = b.proc.Signal(syscall.SIGINT)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		_ = b.proc.Kill()
		<-b.exited
	}
}
