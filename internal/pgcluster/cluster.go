// Package pgcluster runs a PostgreSQL server from the installed binaries as a
// child process: throwaway clusters for tests (internal/pgtest) and the
// persistent local cluster of the dev stack (cmd/shopdev). It listens only on
// a unix socket in its directory. As root it runs the server as the postgres
// user, since initdb and postgres refuse to run as root.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options configure Start.
type Options struct {
	// BinDir holds initdb and postgres (see FindBinDir).
	BinDir string
	// Dir holds the cluster: its data in Dir/data, its socket and log in
	// Dir. Keep it short: the socket path Dir/.s.PGSQL.5432 must fit in
	// about 107 bytes. As root, Dir is handed to the postgres user, so no
	// parent of it may be closed to others (/root is).
	Dir string
	// Throwaway turns durability off (fsync, synchronous commit, full page
	// writes) for speed; use it only for data nobody keeps.
	Throwaway bool
	// MaxConnections is the server's max_connections; default 200.
	MaxConnections int
}

// Cluster is a running PostgreSQL server.
type Cluster struct {
	dir       string
	superuser string
	throwaway bool
	proc      *os.Process
	exited    chan struct{} // closed when postgres has exited; waitErr is set by then
	waitErr   error
}

// Start initializes Dir/data if it holds no cluster yet (initdb, local
// connections trusted), starts postgres and returns once it accepts
// connections. The server stops if this process dies (on Linux). Errors
// carry the server's log.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	cred, superuser, err := serverUser()
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: opts.Dir, superuser: superuser, throwaway: opts.Throwaway, exited: make(chan struct{})}
	if err := makeDir(opts.Dir, cred); err != nil {
		return nil, err
	}
	if err := initdb(ctx, opts, cred, superuser); err != nil {
		return nil, err
	}
	if err := c.startPostgres(opts, cred); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// makeDir creates dir, owned by the server's user when that is not this
// process's (cred not nil).
func makeDir(dir string, cred *syscall.Credential) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
	}
	return nil
}

// initdb creates the cluster in opts.Dir/data, with superuser and local
// connections trusted, unless it is there already.
func initdb(ctx context.Context, opts Options, cred *syscall.Credential, superuser string) error {
	data := filepath.Join(opts.Dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		return nil
	}
	cmd := exec.CommandContext(ctx, filepath.Join(opts.BinDir, "initdb"), "-D", data, "-U", superuser,
		"--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync")
	cmd.Dir = opts.Dir
	// No parent-death signal for initdb: it fires when the forking OS
	// thread exits, and that thread may later be locked to (and die with)
	// another cluster's postgres goroutine while initdb still runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		if errors.Is(err, os.ErrPermission) && cred != nil {
			return fmt.Errorf("pgcluster: the postgres user cannot reach %s (is a parent directory closed to others, like /root?): %w", opts.Dir, err)
		}
		return fmt.Errorf("pgcluster: initdb: %w\n%s", err, out)
	}
	return nil
}

// startPostgres starts the server, logging to Dir/postgres.log, and sets
// c.proc; c.exited is closed when it exits.
func (c *Cluster) startPostgres(opts Options, cred *syscall.Credential) error {
	logFile, err := os.OpenFile(filepath.Join(opts.Dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	defer logFile.Close() // postgres has its own copy
	postgres := exec.Command(filepath.Join(opts.BinDir, "postgres"), serverArgs(opts)...)
	postgres.Dir = opts.Dir
	postgres.Stdout, postgres.Stderr = logFile, logFile
	postgres.SysProcAttr = sysProcAttr(cred)
	started := make(chan error)
	go func() {
		// The parent-death signal fires when the thread that started the child exits, not the
		// process (go.dev/issue/27505): start postgres from a thread that lives as long as it does.
		runtime.LockOSThread()
		if err := postgres.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.waitErr = postgres.Wait()
		close(c.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	c.proc = postgres.Process
	return nil
}

// serverArgs are postgres's command-line arguments for opts: the unix
// socket only, max_connections, and no durability for a throwaway cluster.
func serverArgs(opts Options) []string {
	maxConns := opts.MaxConnections
	if maxConns == 0 {
		maxConns = 200
	}
	data := filepath.Join(opts.Dir, "data")
	args := []string{"-D", data, "-k", opts.Dir, "-c", "listen_addresses=", "-c", "max_connections=" + strconv.Itoa(maxConns)}
	if opts.Throwaway {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	return args
}

// URL returns a URL for database db as role (the superuser when role is "").
func (c *Cluster) URL(role, db string) string {
	if role == "" {
		role = c.superuser
	}
	return fmt.Sprintf("postgres://%s@/%s?host=%s&sslmode=disable", url.User(role), url.PathEscape(db), c.dir)
}

// SuperuserURL returns the superuser's URL for the postgres database.
func (c *Cluster) SuperuserURL() string { return c.URL("", "postgres") }

// Exited is closed when the server has exited.
func (c *Cluster) Exited() <-chan struct{} { return c.exited }

// waitReady polls until the server accepts a connection, exits, or ctx is done.
func (c *Cluster) waitReady(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgx.Connect(ctx, c.SuperuserURL())
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-c.exited:
			return fmt.Errorf("pgcluster: postgres exited while starting (%v); its log:\n%s", c.waitErr, c.Log())
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: postgres not ready: %w; last error: %v; its log:\n%s", ctx.Err(), err, c.Log())
		case <-tick.C:
		}
	}
}

// Log returns what the server has logged since it started.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
	return string(b)
}

// Stop shuts the server down and waits for it: immediately for a
// throwaway cluster (its data needs no checkpoint), with a fast shutdown
// (clean, rolling back open transactions) otherwise. It kills the server if
// it has not stopped within 30 s.
func (c *Cluster) Stop() {
	if c.proc == nil {
		return
	}
	sig := syscall.SIGINT // fast shutdown
	if c.throwaway {
		sig = syscall.SIGQUIT // immediate shutdown
	}
	_ = c.proc.Signal(sig)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.proc.Kill()
		<-c.exited
	}
}

// serverUser returns the credentials to run the server binaries with (nil: this process's) and
// the name of the superuser initdb creates.
func serverUser() (*syscall.Credential, string, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return nil, "", fmt.Errorf("pgcluster: %w", err)
		}
		return nil, u.Username, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, "", fmt.Errorf("pgcluster: running as root needs a postgres user to run the server as (apt-get install postgresql creates it): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, "", fmt.Errorf("pgcluster: postgres user: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, "postgres", nil
}

// ServerUser returns the credentials the server binaries run with (nil:
// this process's; as root, the postgres user's) and that user's name, for
// companions such as PgBouncer, which refuses to run as root too.
func ServerUser() (*syscall.Credential, string, error) { return serverUser() }
