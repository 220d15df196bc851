package devstack_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/decoupledshop/shop/deploy/grafana"
	promrules "github.com/decoupledshop/shop/deploy/prometheus"
	"github.com/decoupledshop/shop/internal/devissuer"
)

// withPrometheus turns the stack's Prometheus on: required in CI, used
// locally when the binary is installed.
func withPrometheus(t *testing.T, args []string) []string {
	t.Helper()
	if _, err := exec.LookPath("prometheus"); err != nil && !required() {
		t.Log("prometheus is not installed (apt-get install prometheus): the stack runs without it")
	}
	return append(slices.Clone(args), "--prometheus=true")
}

// required reports whether tools that are skipped locally must be there
// (CI).
func required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("SHOP_E2E_REQUIRED") == "1"
}

// scrape is a stack's metrics: per service ("productsvc", "cartsvc"), the
// value of each sample line (`name{labels}`).
type scrape map[string]map[string]float64

func scrapeStack(t *testing.T, a stackAddrs) scrape {
	t.Helper()
	s := scrape{}
	for svc, addr := range map[string]string{"productsvc": a.productsAdmin, "cartsvc": a.cartAdmin} {
		s[svc] = map[string]float64{}
		for line := range strings.SplitSeq(httpGet(t, "http://"+addr+"/metrics"), "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err != nil {
				t.Fatalf("%s /metrics: bad line %q", svc, line)
			}
			s[svc][line[:i]] = v
		}
	}
	return s
}

// sum adds up svc's samples of the metric name whose labels contain each
// of labels (`result="applied"`); ok is false when there is none.
func (s scrape) sum(svc, name string, labels ...string) (total float64, ok bool) {
	for sample, v := range s[svc] {
		n, rest, _ := strings.Cut(sample, "{")
		if n != name {
			continue
		}
		if !slices.ContainsFunc(labels, func(l string) bool { return !strings.Contains(rest, l) }) {
			total, ok = total+v, true
		}
	}
	return total, ok
}

// names returns every sample name the stack exports.
func (s scrape) names() map[string]bool {
	names := map[string]bool{}
	for _, samples := range s {
		for sample := range samples {
			n, _, _ := strings.Cut(sample, "{")
			names[n] = true
		}
	}
	return names
}

// checkMetricsMoved: every series the issue asks for is exported, and
// those the README walkthrough exercises (a cart line added, a price
// changed and delivered, carts read) moved.
func checkMetricsMoved(t *testing.T, before, after scrape) {
	type series struct {
		svc, name string
		labels    []string
		moves     bool
	}
	for _, c := range []series{
		// Per RPC, from otelconnect: requests, codes, latency.
		{"cartsvc", "rpc_server_call_duration_seconds_count", []string{`rpc_method="shop.cart.v1.CartService/AddCartItem"`, `rpc_response_status_code="OK"`}, true},
		{"cartsvc", "rpc_server_call_duration_seconds_bucket", []string{`rpc_method="shop.cart.v1.CartService/GetCart"`}, true},
		{"productsvc", "rpc_server_call_duration_seconds_count", []string{`rpc_method="shop.product.v1.ProductService/UpdateProduct"`}, true},
		{"productsvc", "rpc_client_call_duration_seconds_count", []string{`rpc_method="shop.events.v1.EventSinkService/DeliverEvents"`}, true},
		{"cartsvc", "rpc_server_call_duration_seconds_count", []string{`rpc_method="shop.events.v1.EventSinkService/DeliverEvents"`}, true},
		{"cartsvc", "rpc_client_call_duration_seconds_count", []string{`rpc_method="shop.product.v1.ProductService/BatchGetProducts"`}, true},
		// The product cache and the breaker.
		{"cartsvc", "cartsvc_catalog_cache_lookups_total", []string{`result="hit"`}, true},
		{"cartsvc", "cartsvc_catalog_cache_lookups_total", []string{`result="miss"`}, true},
		{"cartsvc", "cartsvc_catalog_cache_lookups_total", []string{`result="stale"`}, false},
		{"cartsvc", "cartsvc_catalog_cache_evictions_total", nil, false},
		{"cartsvc", "cartsvc_catalog_breaker_state", nil, false},
		{"cartsvc", "cartsvc_catalog_breaker_transitions_total", []string{`to="open"`}, false},
		// Delivery: outbox, relay, lag, dead letters, inbox, refusals.
		{"productsvc", "productsvc_outbox_depth", []string{`subscriber="cartsvc"`}, false},
		{"productsvc", "productsvc_outbox_oldest_age_seconds", []string{`subscriber="cartsvc"`}, false},
		{"productsvc", "productsvc_relay_batches_total", []string{`subscriber="cartsvc"`}, true},
		{"productsvc", "productsvc_relay_attempts_total", []string{`subscriber="cartsvc"`}, true},
		{"productsvc", "productsvc_relay_failures_total", []string{`subscriber="cartsvc"`}, false},
		{"productsvc", "productsvc_dead_letters", []string{`subscriber="cartsvc"`}, false},
		{"cartsvc", "cartsvc_event_lag_seconds_count", nil, true},
		{"cartsvc", "cartsvc_dead_letters", nil, false},
		{"cartsvc", "cartsvc_events_total", []string{`result="applied"`}, true},
		{"cartsvc", "cartsvc_events_total", []string{`result="dead_lettered"`}, false},
		{"cartsvc", "cartsvc_event_calls_refused_total", []string{`reason="rate"`}, false},
		// Database pools.
		{"productsvc", "pgxpool_acquires_total", nil, true},
		{"cartsvc", "pgxpool_acquires_total", nil, true},
		{"cartsvc", "pgxpool_max_connections", nil, false},
		{"cartsvc", "go_goroutines", nil, false},
	} {
		now, ok := after.sum(c.svc, c.name, c.labels...)
		if !ok {
			t.Errorf("%s exports no %s%v", c.svc, c.name, c.labels)
			continue
		}
		if was, _ := before.sum(c.svc, c.name, c.labels...); c.moves && now <= was {
			t.Errorf("%s's %s%v did not move under the walkthrough: %g before, %g after", c.svc, c.name, c.labels, was, now)
		}
	}
}

// checkQueriesNameExportedSeries: every series the alert rules and the
// dashboard query is one the running services export.
func checkQueriesNameExportedSeries(t *testing.T, s scrape) {
	exported := s.names()
	dashboard, err := grafana.Expressions()
	if err != nil {
		t.Fatal(err)
	}
	for _, expr := range append(promrules.RuleExpressions(), dashboard...) {
		for _, name := range promrules.MetricNames(expr) {
			if !exported[name] {
				t.Errorf("%s (in %q) is not exported by either service", name, expr)
			}
		}
	}
}

// checkPrometheus: with the binary installed, shopdev's Prometheus has the
// rules loaded and scrapes both services; without it, shopdev says how to
// get it.
func checkPrometheus(t *testing.T, a stackAddrs, welcome string) {
	if _, err := exec.LookPath("prometheus"); err != nil {
		if required() {
			t.Fatal("prometheus is not installed: apt-get install prometheus")
		}
		if !strings.Contains(welcome, "apt-get install prometheus") {
			t.Errorf("without prometheus the welcome text does not say how to get it:\n%s", welcome)
		}
		t.Skip("prometheus is not installed")
	}
	base := "http://" + a.prometheus
	if !strings.Contains(welcome, base) {
		t.Errorf("the welcome text does not show Prometheus at %s:\n%s", base, welcome)
	}
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name string `json:"name"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(httpGet(t, base+"/api/v1/rules")), &rules); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Name)
		}
	}
	for _, want := range []string{"ShopEventDeliveryLagging", "ShopCatalogBreakerOpen", "ShopDatabasePoolSaturated"} {
		if !slices.Contains(names, want) {
			t.Errorf("Prometheus has rules %v, want %s among them", names, want)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		body := httpGet(t, base+"/api/v1/query?query=up")
		if strings.Count(body, `"1"]`) == 2 && strings.Contains(body, `"job":"productsvc"`) && strings.Contains(body, `"job":"cartsvc"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus does not scrape both services within 30s: up = %s", body)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// secrets are what must never reach a log: access tokens (JWTs), bearer
// headers, passwords and client secrets.
var secrets = regexp.MustCompile(`(?i)eyJ[a-z0-9_-]{8,}\.eyJ|bearer |authorization|password|` + regexp.QuoteMeta(devissuer.DemoRelaySecret))

// checkLogsHoldNoSecrets: every log the stack wrote during the walkthrough
// (both services, Prometheus) is free of secrets, and the services wrote
// one text line per RPC.
func checkLogsHoldNoSecrets(t *testing.T, dir string) {
	logs, err := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	if err != nil || len(logs) < 2 {
		t.Fatalf("logs in %s: %v, %v", dir, logs, err)
	}
	rpcLines := 0
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if m := secrets.FindString(line); m != "" {
				t.Errorf("%s holds %q: %s", filepath.Base(path), m, line)
			}
			if strings.Contains(line, "msg=rpc ") && strings.Contains(line, "trace_id=") {
				rpcLines++
			}
		}
	}
	if rpcLines < 10 {
		t.Errorf("%d request log lines (msg=rpc, with a trace_id) in %v, want one per RPC of the walkthrough", rpcLines, logs)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}
