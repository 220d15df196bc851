package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/decoupledshop/shop/internal/pgcluster"
)

const (
	// tmpRoot is short on purpose: a unix socket path (dir + "/.s.PGSQL.5432") must fit in ~107 bytes.
	tmpRoot   = "/tmp"
	dirPrefix = "pgtest-"
	// ownerFile appears in a cluster directory once its creator holds the directory's lock.
	ownerFile = "pgtest.owner"
)

// cluster is a throwaway PostgreSQL server in a locked directory of its own under /tmp.
type cluster struct {
	*pgcluster.Cluster
	dir  string
	lock *os.File // flock on dir, held while the cluster lives; the kernel drops it if we die
}

// startCluster creates and locks a directory under /tmp and starts a throwaway cluster in it.
func startCluster(ctx context.Context, binDir string) (*cluster, error) {
	reapOrphans()
	dir, lock, err := makeDir()
	if err != nil {
		return nil, err
	}
	c, err := pgcluster.Start(ctx, pgcluster.Options{BinDir: binDir, Dir: dir, Throwaway: true})
	if err != nil {
		os.RemoveAll(dir)
		lock.Close()
		return nil, err
	}
	return &cluster{Cluster: c, dir: dir, lock: lock}, nil
}

// stop shuts the server down immediately and removes its directory.
func (c *cluster) stop() error {
	c.Stop()
	err := os.RemoveAll(c.dir)
	c.lock.Close()
	return err
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
