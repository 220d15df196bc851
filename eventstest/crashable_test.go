//go:build linux

package eventstest_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decoupledshop/shop/internal/pgcluster"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// durableCluster is a PostgreSQL cluster of this test alone, with
// durability on, which the test can crash and restart.
type durableCluster struct {
	opts pgcluster.Options
	mu   sync.Mutex
	c    *pgcluster.Cluster
}

func startDurableCluster(t *testing.T) *durableCluster {
	t.Helper()
	binDir, err := pgcluster.FindBinDir(os.Getenv("PG_BIN"), pgcluster.DebianBinGlob, os.Getenv("PATH"))
	if err != nil {
		t.Fatal(err)
	}
	// Short and outside /root: the socket path must fit, and as root the
	// server runs as the postgres user.
	dir, err := os.MkdirTemp("/tmp", "shopcrash-")
	if err != nil {
		t.Fatal(err)
	}
	d := &durableCluster{opts: pgcluster.Options{BinDir: binDir, Dir: dir, MaxConnections: 100}}
	if d.c, err = pgcluster.Start(context.Background(), d.opts); err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.c.Stop()
		os.RemoveAll(dir)
	})
	return d
}

// database creates role and its database db (only the role may connect;
// it owns schema public), as the dev stack does, and returns its URL.
func (d *durableCluster) database(t *testing.T, role, db string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, d.c.SuperuserURL())
	if err != nil {
		t.Fatal(err)
	}
	r, n := pgx.Identifier{role}.Sanitize(), pgx.Identifier{db}.Sanitize()
	for _, sql := range []string{
		"CREATE ROLE " + r + " LOGIN",
		"CREATE DATABASE " + n + " OWNER " + r,
		"REVOKE ALL ON DATABASE " + n + " FROM PUBLIC",
		"GRANT CONNECT, TEMPORARY ON DATABASE " + n + " TO " + r,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	conn.Close(ctx)
	conn, err = pgx.Connect(ctx, d.c.URL("", db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "ALTER SCHEMA public OWNER TO "+r); err != nil {
		t.Fatal(err)
	}
	return d.c.URL(role, db)
}

// crashAndRestart stops the server with an immediate shutdown (SIGQUIT to
// the postmaster: no checkpoint, crash recovery at the next start) and
// starts it again in the same directory.
func (d *durableCluster) crashAndRestart(t *testing.T) (exited, ready time.Duration) {
	t.Helper()
	began := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	raw, err := os.ReadFile(filepath.Join(d.opts.Dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := bytes.Cut(raw, []byte("\n"))
	pid, err := strconv.Atoi(string(first))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.c.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("postgres did not exit within 30 s of an immediate shutdown")
	}
	exited = time.Since(began)
	if d.c, err = pgcluster.Start(context.Background(), d.opts); err != nil {
		t.Fatal(err)
	}
	return exited, time.Since(began)
}

// log is the server's log since it last started.
func (d *durableCluster) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.c.Log()
}

// buildCartsvc builds cmd/cartsvc into dir.
func buildCartsvc(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "cartsvc")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/cartsvc")
	cmd.Dir = shoptest.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/cartsvc: %v\n%s", err, out)
	}
	return bin
}

func logFile(t *testing.T, dir, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// cartProcess is cartsvc running as a child process.
type cartProcess struct {
	t   *testing.T
	bin string
	env []string
	log *os.File

	proc   *os.Process
	exited chan struct{}
}

// start runs the binary and waits until it is ready.
func (c *cartProcess) start() {
	c.t.Helper()
	cmd := exec.Command(c.bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, c.env...)
	cmd.Stdout, cmd.Stderr = c.log, c.log
	// Killed with this test binary, whatever happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error)
	exited := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the starting thread exits:
		// keep it for as long as the child lives.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		c.t.Fatalf("start cartsvc: %v", err)
	}
	c.proc, c.exited = cmd.Process, exited
	var addr string
	for _, kv := range c.env {
		if v, ok := strings.CutPrefix(kv, "ADDR="); ok {
			addr = v
		}
	}
	shoptest.WaitReady(c.t, "http://"+addr, 30*time.Second, done)
}

// kill SIGKILLs the process and waits for it to be gone.
func (c *cartProcess) kill() {
	if c.proc == nil {
		return
	}
	if err := c.proc.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Errorf("kill cartsvc: %v", err)
	}
	<-c.exited
	c.proc = nil
}

// tail is the end of the processes' log, for failure messages.
func (c *cartProcess) tail() string {
	b, _ := os.ReadFile(c.log.Name())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
