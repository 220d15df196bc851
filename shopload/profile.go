package shopload

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// profile starts a CPU profile of each service for the length of scenario
// name if profiles are asked for and this is its first repetition, and
// returns a function that waits for them to be written.
func (b *bench) profile(ctx context.Context, name string, rep int) (wait func()) {
	d := b.cfg.Duration
	switch name {
	case ScenarioPlain, ScenarioPGInsert, ScenarioPGSelect, ScenarioBacklog:
		return func() {}
	case ScenarioPriceStorm:
		d = b.cfg.StormDuration
	}
	if b.cfg.ProfileDir == "" || rep != 1 {
		return func() {}
	}
	var wg sync.WaitGroup
	for svc, u := range b.tg.Pprof {
		path := filepath.Join(b.cfg.ProfileDir, name+"-"+svc+".pprof")
		wg.Go(func() {
			if err := fetchProfile(ctx, u, max(d/time.Second, 1), path); err != nil {
				fmt.Fprintf(b.log, "profile of %s during %s: %v\n", svc, name, err)
			}
		})
	}
	return wg.Wait
}

// fetchProfile writes a CPU profile of secs seconds from the pprof
// handler at base (ending in /debug/pprof/) to path.
func fetchProfile(ctx context.Context, base string, secs time.Duration, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%sprofile?seconds=%d", base, secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", req.URL, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, body, 0o644)
}
