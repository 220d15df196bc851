package faulttest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decoupledshop/shop/shopload"
)

func TestMain(m *testing.M) {
	code := m.Run()
	shopload.RemoveBuilt()
	os.Exit(code)
}

// long skips t unless SHOP_LONG=1 asks for the long tests.
func long(t *testing.T) {
	t.Helper()
	if os.Getenv("SHOP_LONG") != "1" {
		t.Skip("a long test: set SHOP_LONG=1 to run it")
	}
}

// The load every fault test runs: mixed traffic at about 200 requests per
// second on a small shop.
const (
	rate     = 200
	products = 300
	users    = 20
	lines    = 10
)

// bundle is a started, seeded stack and its shop.
type bundle struct {
	st   *shopload.Stack
	shop *shopload.Shop
}

// setup starts the stack with cfg (users and the log filled in), seeds
// it, and turns events on.
func setup(t *testing.T, cfg shopload.StackConfig) *bundle {
	t.Helper()
	ctx := context.Background()
	cfg.Users = users
	log := &testLog{t: t}
	cfg.Log = log
	st, err := shopload.StartStack(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	t.Cleanup(func() { // runs before st.Close: the logs are still there
		if t.Failed() {
			logTrouble(t, st.LogDir())
		}
	})
	clients := shopload.NewClients(64, st.Products.URL(), st.Cart.URL(), "")
	shop, err := shopload.Seed(ctx, st.Target(), shopload.SeedConfig{Products: products, Users: users, Lines: lines}, clients, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnableEvents(); err != nil {
		t.Fatal(err)
	}
	return &bundle{st: st, shop: shop}
}

// logTrouble puts the last warnings and errors each service logged into
// the test's output, so a failure in CI can be read without the stack.
func logTrouble(t *testing.T, dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Logf("service logs: %v", err)
		return
	}
	for _, e := range entries {
		body, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var trouble []string
		for line := range strings.Lines(string(body)) {
			if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) ||
				strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				trouble = append(trouble, strings.TrimSpace(line))
			}
		}
		if n := len(trouble); n > 40 {
			trouble = trouble[n-40:]
		}
		t.Logf("%s: last warnings and errors (%d shown):\n%s", e.Name(), len(trouble), strings.Join(trouble, "\n"))
	}
}

// testLog writes progress lines to the test log.
type testLog struct{ t *testing.T }

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// outcome is one finished request.
type outcome struct {
	op         string
	start, end time.Time
	code       string // "" on success
}

// timeline records every request's outcome.
type timeline struct {
	mu  sync.Mutex
	all []outcome
}

func (tl *timeline) record(op string, start time.Time, lat time.Duration, err error) {
	o := outcome{op: op, start: start, end: start.Add(lat)}
	if err != nil {
		o.code = shopload.ErrorCode(err)
	}
	tl.mu.Lock()
	tl.all = append(tl.all, o)
	tl.mu.Unlock()
}

// matching returns the outcomes of op ("" for all) that pass keep.
func (tl *timeline) matching(op string, keep func(outcome) bool) []outcome {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []outcome
	for _, o := range tl.all {
		if (op == "" || o.op == op) && keep(o) {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

// codes counts outcomes by code ("ok" for success).
func codes(os []outcome) map[string]int {
	m := map[string]int{}
	for _, o := range os {
		c := o.code
		if c == "" {
			c = "ok"
		}
		m[c]++
	}
	return m
}

// summary prints per op: answers by code.
func (tl *timeline) summary() string {
	byOp := map[string][]outcome{}
	for _, o := range tl.matching("", func(outcome) bool { return true }) {
		byOp[o.op] = append(byOp[o.op], o)
	}
	var names []string
	for n := range byOp {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "  %-14s %v\n", n, codes(byOp[n]))
	}
	return b.String()
}

// during runs the traffic mix for total while fault runs (started after
// warm), and returns when both are done.
func during(t *testing.T, b *bundle, mix []shopload.MixOp, tl *timeline, total, warm time.Duration, fault func()) *shopload.OpenStats {
	t.Helper()
	var stats *shopload.OpenStats
	done := make(chan struct{})
	go func() {
		defer close(done)
		stats = shopload.Open(context.Background(), shopload.OpenConfig{
			Rate: rate, Duration: total, MaxInFlight: 512, Timeout: 10 * time.Second, OnResult: tl.record,
		}, mix)
	}()
	time.Sleep(warm)
	fault()
	<-done
	if stats.Skipped > 0 {
		t.Logf("%d requests not sent: 512 were waiting for answers", stats.Skipped)
	}
	return stats
}

// since is t relative to ref, in seconds, for messages.
func since(ref, t time.Time) string { return fmt.Sprintf("%+.2f s", t.Sub(ref).Seconds()) }
