package shopload

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

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
