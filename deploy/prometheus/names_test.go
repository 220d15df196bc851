package prometheus_test

import (
	"slices"
	"testing"

	"github.com/decoupledshop/shop/deploy/prometheus"
)

func TestMetricNames(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (job, le) (rate(rpc_server_call_duration_seconds_bucket{rpc_method="a/b"}[5m]))) > 0.5`:             {"rpc_server_call_duration_seconds_bucket"},
		`max by (subscriber) (productsvc_dead_letters) > 0 or on() (max(cartsvc_dead_letters) > 0)`:                                          {"cartsvc_dead_letters", "productsvc_dead_letters"},
		`max by (job, instance) (pgxpool_acquired_connections / pgxpool_max_connections) > 0.9 and on (job, instance) rate(x_total[5m]) > 0`: {"pgxpool_acquired_connections", "pgxpool_max_connections", "x_total"},
	} {
		if got := prometheus.MetricNames(expr); !slices.Equal(got, want) {
			t.Errorf("MetricNames(%s) = %v, want %v", expr, got, want)
		}
	}
}

func TestRuleExpressionsFindsEveryRule(t *testing.T) {
	t.Parallel()
	exprs := prometheus.RuleExpressions()
	if len(exprs) != 7 {
		t.Fatalf("%d expressions, want the 7 rules':\n%q", len(exprs), exprs)
	}
	for _, e := range exprs {
		if len(prometheus.MetricNames(e)) == 0 {
			t.Errorf("expression %q names no series", e)
		}
	}
}
