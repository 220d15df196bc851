package shopload_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/decoupledshop/shop/shopload"
)

func noEnv(string) string { return "" }

func TestMain(m *testing.M) {
	code := m.Run()
	shopload.RemoveBuilt()
	os.Exit(code)
}

// TestRun runs the whole tool at a tiny scale: it starts the stack, seeds
// it, runs every baseline and scenario once and writes both reports. No
// figure is asserted, only that every scenario measured something and
// every ratio of issue 10's table is there.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and two service processes")
	}
	out := filepath.Join(t.TempDir(), "tiny")
	var stdout, stderr bytes.Buffer
	err := shopload.Run(context.Background(), []string{
		"--duration", "300ms", "--storm-duration", "300ms", "--reps", "1", "--concurrency", "4", "--db-workers", "2",
		"--products", "60", "--users", "3", "--lines", "5", "--backlog", "30",
		"--backlog-timeout", "30s", "--settle-timeout", "30s", "--out", out,
	}, noEnv, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, stderr.String())
	}
	rep := readReport(t, out+".json")
	if len(rep.Scenarios) != len(shopload.Scenarios()) {
		t.Errorf("report has %d scenarios, want %d", len(rep.Scenarios), len(shopload.Scenarios()))
	}
	for _, s := range rep.Scenarios {
		if len(s.Reps) != 1 {
			t.Errorf("%s: %d repetitions, want 1", s.Name, len(s.Reps))
			continue
		}
		r := s.Reps[0]
		if s.Name == shopload.ScenarioBacklog {
			if r.EventsPerSec == nil || r.Backlog < 30 {
				t.Errorf("backlog: %+v, want events per second over a backlog of at least 30", r)
			}
			continue
		}
		if r.Requests == 0 {
			t.Errorf("%s: no successful request (errors %v, note %q)", s.Name, r.Errors, r.Note)
		}
		if len(r.CPUPerRequestUs) == 0 {
			t.Errorf("%s: no CPU figures", s.Name)
		}
	}
	if rep.Machine.Postgres == "" || rep.Machine.GoVersion == "" || !strings.Contains(rep.Command, "--reps") {
		t.Errorf("machine facts or command missing: %+v, %q", rep.Machine, rep.Command)
	}
	md, err := os.ReadFile(out + ".md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"GetProduct (proto) ÷ plain", "AddCartItem ÷ raw single-row INSERT", "outbox backlog drained", "| get_cart_cold |"} {
		if !strings.Contains(string(md), want) || !strings.Contains(stdout.String(), want) {
			t.Errorf("the Markdown report (file and stdout) lacks %q", want)
		}
	}
	t.Logf("tiny run's table:\n%s", stdout.String())
}

// TestLongRunTarget points the tool at a running stack (started here, as
// shopdev would run it): it seeds and measures through the given URLs,
// gets tokens with the issuer's password grant, and skips what needs the
// unknown processes (the backlog freezes cartsvc; no cache-off replica).
// Long mode only: TestRun covers the tool's measuring at less cost.
func TestLongRunTarget(t *testing.T) {
	long(t)
	ctx := context.Background()
	st, err := shopload.StartStack(ctx, shopload.StackConfig{Users: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.EnableEvents(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "target")
	var stdout, stderr bytes.Buffer
	err = shopload.Run(ctx, []string{
		"--product-url", st.Products.URL(), "--cart-url", st.Cart.URL(), "--issuer-url", st.Issuer.URL(),
		"--target-users", "load00000,load00001", "--target-product-database-url", st.ProductDB,
		"--target-cart-database-url", st.CartDB, "--baseline-database-url", st.BenchDB,
		"--duration", "300ms", "--storm-duration", "300ms", "--reps", "1", "--concurrency", "4", "--db-workers", "2",
		"--products", "40", "--lines", "5", "--out", out,
	}, noEnv, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, stderr.String())
	}
	rep := readReport(t, out+".json")
	for _, s := range rep.Scenarios {
		r := s.Reps[0]
		switch s.Name {
		case shopload.ScenarioBacklog, shopload.ScenarioGetCartCold:
			if !strings.HasPrefix(r.Note, "skipped") {
				t.Errorf("%s against a running stack: %+v, want it skipped", s.Name, r)
			}
		default:
			if r.Requests == 0 {
				t.Errorf("%s: no successful request (errors %v, note %q)", s.Name, r.Errors, r.Note)
			}
		}
	}
	err = shopload.Run(ctx, []string{"--product-url", "http://example.com:8081", "--cart-url", st.Cart.URL(), "--issuer-url", st.Issuer.URL()},
		noEnv, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("a target off loopback: %v, want an error saying loopback only", err)
	}
}

// readReport reads a JSON report.
func readReport(t *testing.T, path string) shopload.Report {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep shopload.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("the JSON report does not parse: %v", err)
	}
	return rep
}

// long skips t unless SHOP_LONG=1 asks for the long tests.
func long(t *testing.T) {
	t.Helper()
	if os.Getenv("SHOP_LONG") != "1" {
		t.Skip("a long test: set SHOP_LONG=1 to run it")
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"soak", "--help"}} {
		var stdout bytes.Buffer
		if err := shopload.Run(context.Background(), args, noEnv, &stdout, &bytes.Buffer{}); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.Contains(stdout.String(), "(env SHOPLOAD_DURATION)") {
			t.Errorf("%v printed no flags with their environment variables:\n%s", args, stdout.String())
		}
	}
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--reps", "0"}, {"--scenarios", "nope"}, {"--lines", "30", "--products", "20"}, {"soak", "--rate", "0"}} {
		err := shopload.Run(context.Background(), args, noEnv, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil {
			t.Errorf("%v accepted, want an error", args)
		}
	}
	env := map[string]string{"SHOPLOAD_REPS": "0"}
	if err := shopload.Run(context.Background(), nil, func(k string) string { return env[k] }, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("SHOPLOAD_REPS=0 accepted, want an error")
	}
}

// TestLongSoak is the soak's long mode: two minutes of mixed traffic and an
// event storm; it fails on any failed request, on growth of either
// service's RSS or goroutines, or on undelivered events.
func TestLongSoak(t *testing.T) {
	long(t)
	var log bytes.Buffer
	res, err := shopload.Soak(context.Background(), shopload.SoakConfig{
		Duration: 2 * time.Minute, SampleEvery: 5 * time.Second, Rate: 100,
		Products: 1000, Users: 20, Lines: 10,
	}, &log)
	t.Logf("soak:\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("events drained %s after the traffic", res.Drained.Round(time.Millisecond))
	for _, f := range res.Failures {
		t.Error(f)
	}
}
