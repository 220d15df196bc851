package pgtest

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

const (
	// tmpRoot is short on purpose: a unix socket path (dir + "/.s.PGSQL.5432") must fit in ~107 bytes.
	tmpRoot   = "/tmp"
	dirPrefix = "pgtest-"
	// ownerFile appears in a cluster directory once its creator holds the directory's lock.
	ownerFile = "pgtest.owner"
)

// cluster is a throwaway PostgreSQL server listening only on a unix socket in dir.
type cluster struct {
	dir     string
	url     string   // superuser URL, database postgres
	lock    *os.File // flock on dir, held while the cluster lives; the kernel drops it if we die
	proc    *os.Process
	exited  chan struct{} // closed when postgres has exited; waitErr is set by then
	waitErr error
}

// startCluster creates a directory under /tmp, runs initdb and starts postgres with durability
// off, returning once the server accepts connections. As root it runs the binaries as the
// postgres user, since initdb and postgres refuse to run as root.
func startCluster(ctx context.Context, binDir string) (_ *cluster, err error) {
	reapOrphans()
	cred, superuser, err := serverUser()
	if err != nil {
		return nil, err
	}
	c := &cluster{exited: make(chan struct{})}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	if c.dir, c.lock, err = makeDir(); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(c.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	c.url = fmt.Sprintf("postgres://%s@/postgres?host=%s&sslmode=disable", url.User(superuser), c.dir)
	data := filepath.Join(c.dir, "data")

	initdb := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"), "-D", data, "-U", superuser,
		"--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync")
	initdb.Dir = c.dir
	initdb.SysProcAttr = sysProcAttr(cred)
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}

	logFile, err := os.Create(filepath.Join(c.dir, "postgres.log"))
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	defer logFile.Close() // postgres has its own copy
	postgres := exec.Command(filepath.Join(binDir, "postgres"), "-D", data, "-k", c.dir,
		"-c", "listen_addresses=", "-c", "max_connections=200",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	postgres.Dir = c.dir
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
		return nil, fmt.Errorf("pgtest: start postgres: %w", err)
	}
	c.proc = postgres.Process
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// waitReady polls until the server accepts a connection, exits, or ctx is done.
func (c *cluster) waitReady(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgx.Connect(ctx, c.url)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-c.exited:
			return fmt.Errorf("pgtest: postgres exited while starting (%v); its log:\n%s", c.waitErr, c.log())
		case <-ctx.Done():
			return fmt.Errorf("pgtest: postgres not ready: %w; last error: %v; its log:\n%s", ctx.Err(), err, c.log())
		case <-tick.C:
		}
	}
}

func (c *cluster) log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
	return string(b)
}

// stop shuts the server down immediately (the data is thrown away, so it needs no checkpoint)
// and removes its directory.
func (c *cluster) stop() error {
	if c.proc != nil {
		_ = c.proc.Signal(syscall.SIGQUIT)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			_ = c.proc.Kill()
			<-c.exited
		}
	}
	var err error
	if c.dir != "" {
		err = os.RemoveAll(c.dir)
	}
	if c.lock != nil {
		c.lock.Close()
	}
	return err
}

// serverUser returns the credentials to run the server binaries with (nil: this process's) and
// the name of the superuser initdb creates.
func serverUser() (*syscall.Credential, string, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return nil, "", fmt.Errorf("pgtest: %w", err)
		}
		return nil, u.Username, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, "", fmt.Errorf("pgtest: running as root needs a postgres user to run the server as (apt-get install postgresql creates it): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, "", fmt.Errorf("pgtest: postgres user: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, "postgres", nil
}

// makeDir creates a cluster directory and locks it. The owner file is written only once the
// lock is held, so reapOrphans never takes a directory that is still being set up.
func makeDir() (string, *os.File, error) {
	dir, err := os.MkdirTemp(tmpRoot, dirPrefix)
	if err != nil {
		return "", nil, fmt.Errorf("pgtest: %w", err)
	}
	lock, err := os.Open(dir)
	if err == nil {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("pgtest: lock cluster directory: %w", err)
	}
	return dir, lock, nil
}

// reapOrphans removes the directories of clusters whose test binary died without stopping them
// (a panicking test, a timeout, a kill): their lock was released by the kernel. The server
// itself died with its parent (see sysProcAttr).
func reapOrphans() {
	dirs, _ := filepath.Glob(filepath.Join(tmpRoot, dirPrefix+"*"))
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, ownerFile)); err != nil {
			continue
		}
		f, err := os.Open(dir)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.RemoveAll(dir)
		}
		f.Close()
	}
}
