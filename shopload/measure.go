package shopload

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// watched is a process whose CPU a scenario reports.
type watched struct {
	name string
	pid  func() int
	tree bool // count children (PostgreSQL)
}

// cpuSnapshot is each watched process's CPU time at one moment.
type cpuSnapshot map[string]time.Duration

func snapshotCPU(ws []watched) cpuSnapshot {
	out := cpuSnapshot{}
	for _, w := range ws {
		pid := w.pid()
		if pid == 0 {
			continue
		}
		var d time.Duration
		var err error
		if w.tree {
			d, err = treeCPUTime(pid)
		} else {
			d, err = cpuTime(pid)
		}
		if err == nil {
			out[w.name] = d
		}
	}
	return out
}

// perRequest returns each process's CPU between two snapshots per request,
// in microseconds.
func perRequest(before, after cpuSnapshot, requests int) map[string]float64 {
	out := map[string]float64{}
	if requests == 0 {
		return out
	}
	for name, b := range before {
		if a, ok := after[name]; ok && a >= b {
			out[name] = float64((a - b).Microseconds()) / float64(requests)
		}
	}
	return out
}

// Metrics is one scrape of a Prometheus text endpoint: sample (name with
// labels, as written) → value.
type Metrics map[string]float64

// Scrape reads url (a /metrics endpoint); nil if it does not answer.
func Scrape(ctx context.Context, client *http.Client, url string) Metrics {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	m := Metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// sum adds the samples whose name (with labels) contains every part.
func (m Metrics) sum(parts ...string) (float64, bool) {
	var total float64
	found := false
	for k, v := range m {
		ok := true
		for _, p := range parts {
			if !strings.Contains(k, p) {
				ok = false
				break
			}
		}
		if ok {
			total += v
			found = true
		}
	}
	return total, found
}

// cacheHitRatio is hits ÷ (hits + misses) between two scrapes of cartsvc,
// from any counter with "cache" in its name and hit/miss in its name or
// labels; ok is false when cartsvc exports none.
func cacheHitRatio(before, after Metrics) (ratio float64, ok bool) {
	delta := func(parts ...string) (float64, bool) {
		a, okA := after.sum(parts...)
		b, _ := before.sum(parts...)
		return a - b, okA
	}
	hits, ok1 := delta("cache", "hit")
	misses, ok2 := delta("cache", "miss")
	if !ok1 || !ok2 || hits+misses == 0 {
		return 0, false
	}
	return hits / (hits + misses), true
}

// appliedEvents is cartsvc's count of events applied.
func (m Metrics) appliedEvents() (float64, bool) {
	return m.sum(`cartsvc_events_total{`, `result="applied"`)
}

// Goroutines is go_goroutines.
func (m Metrics) Goroutines() (float64, bool) {
	v, ok := m["go_goroutines"]
	return v, ok
}

// outboxCount is how many events productsvc has yet to deliver.
func outboxCount(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	err := pool.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&n)
	return n, err
}

// waitOutboxEmpty polls until productsvc's outbox is empty, or timeout; it
// returns how many events are left.
func waitOutboxEmpty(ctx context.Context, pool *pgxpool.Pool, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		n, err := outboxCount(ctx, pool)
		if err != nil || n == 0 || time.Now().After(deadline) {
			return n, err
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lagSampler measures delivery lag: from a catalog write's acknowledgement
// until cartsvc's database holds the product at that version. It tracks
// at most maxPending writes at a time (one per product) and polls their
// versions every 10 ms with one query (lightly: it shares the machine).
type lagSampler struct {
	pool *pgxpool.Pool
	mu   sync.Mutex
	want map[string]Ack
	lags []time.Duration
}

const maxPending = 64

func newLagSampler(pool *pgxpool.Pool) *lagSampler {
	return &lagSampler{pool: pool, want: map[string]Ack{}}
}

// Track follows a if there is room.
func (l *lagSampler) Track(a Ack) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, busy := l.want[a.ProductID]; !busy && len(l.want) < maxPending {
		l.want[a.ProductID] = a
	}
}

// run polls until ctx is done.
func (l *lagSampler) run(ctx context.Context) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l.mu.Lock()
		ids := make([]string, 0, len(l.want))
		for id := range l.want {
			ids = append(ids, id)
		}
		l.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		rows, err := l.pool.Query(ctx, "SELECT product_id::text, version FROM product_versions WHERE product_id = ANY($1::uuid[])", ids)
		if err != nil {
			continue
		}
		now := time.Now()
		l.mu.Lock()
		for rows.Next() {
			var id string
			var v int64
			if rows.Scan(&id, &v) == nil {
				if a, ok := l.want[id]; ok && v >= a.Version {
					if len(l.lags) < maxSamples {
						l.lags = append(l.lags, now.Sub(a.At))
					}
					delete(l.want, id)
				}
			}
		}
		l.mu.Unlock()
		rows.Close()
	}
}

// quantiles returns the p50 and p99 of the lags seen, and how many.
func (l *lagSampler) quantiles() (p50, p99 time.Duration, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lags) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(l.lags)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, len(s)*99/100)], len(s)
}

// machine facts for reports.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
