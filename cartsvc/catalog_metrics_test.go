package cartsvc_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/decoupledshop/shop/cartsvc/productclient"
	"github.com/decoupledshop/shop/internal/telemetry"
)

// TestCacheAndBreakerAreMeasured: the product cache counts hits, misses
// and stale answers; the breaker's state and transitions are exported as
// it opens, half-opens and closes.
func TestCacheAndBreakerAreMeasured(t *testing.T) {
	t.Parallel()
	b := setup(t, withCatalog(breakerCatalog))
	reg := prometheus.NewRegistry()
	reg.MustRegister(b.catalog.Collectors()...)
	metric := func(sample string) string { return telemetry.Sample(reg, sample) }
	soap := b.createProduct(t, "Soap", 250)
	b.add(t, "alice", soap, 2) // a miss: asks productsvc
	b.cart(t, "alice")         // a hit
	if metric(`cartsvc_catalog_cache_lookups_total{result="miss"}`) == "0" || metric(`cartsvc_catalog_cache_lookups_total{result="hit"}`) == "0" {
		t.Errorf("after a miss and a hit: misses %s, hits %s; want both counted",
			metric(`cartsvc_catalog_cache_lookups_total{result="miss"}`), metric(`cartsvc_catalog_cache_lookups_total{result="hit"}`))
	}
	if got := metric("cartsvc_catalog_breaker_state"); got != "0" {
		t.Errorf("breaker state %s before any failure, want 0 (closed)", got)
	}

	b.products.Drop()
	for range 2 {
		b.expireCache()
		b.cart(t, "alice")
	}
	if b.catalog.BreakerState() != productclient.StateOpen {
		t.Fatal("the breaker did not open")
	}
	for sample, want := range map[string]string{
		`cartsvc_catalog_cache_lookups_total{result="stale"}`:    "2",
		"cartsvc_catalog_breaker_state":                          "2",
		`cartsvc_catalog_breaker_transitions_total{to="open"}`:   "1",
		`cartsvc_catalog_breaker_transitions_total{to="closed"}`: "0",
	} {
		if got := metric(sample); got != want {
			t.Errorf("with productsvc down, %s = %s, want %s", sample, got, want)
		}
	}
	b.products.Recover()
	eventually(t, "the breaker is half-open", func() bool { return b.catalog.BreakerState() == productclient.StateHalfOpen })
	if got := metric("cartsvc_catalog_breaker_state"); got != "1" {
		t.Errorf("half-open breaker state %s, want 1", got)
	}
	b.cart(t, "alice") // the probe succeeds
	if got := metric(`cartsvc_catalog_breaker_transitions_total{to="closed"}`); got != "1" {
		t.Errorf("transitions to closed = %s after a good probe, want 1", got)
	}
}
