package productclient

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts what the cache and the breaker do. Counting costs an
// atomic add per lookup; the breaker's state is read when scraped.
type metrics struct {
	lookups             *prometheus.CounterVec
	hits, misses, stale prometheus.Counter
	evictions           prometheus.Counter
	transitions         *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartsvc_catalog_cache_lookups_total",
			Help: "Products looked up in the product cache, by result: hit (fresh), miss (asked productsvc), stale (served from an old entry because productsvc did not answer).",
		}, []string{"result"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartsvc_catalog_cache_evictions_total",
			Help: "Entries the product cache dropped to stay within its size or when they expired.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartsvc_catalog_breaker_transitions_total",
			Help: "Changes of the productsvc circuit breaker's state, by the state entered: open, half_open, closed.",
		}, []string{"to"}),
	}
	m.hits, m.misses, m.stale = m.lookups.WithLabelValues("hit"), m.lookups.WithLabelValues("miss"), m.lookups.WithLabelValues("stale")
	for _, s := range []State{StateOpen, StateHalfOpen, StateClosed} {
		m.transitions.WithLabelValues(stateLabel(s))
	}
	return m
}

// stateLabel is a state's label value and stateValue its gauge value
// (alerts compare with them: 2 is open).
func stateLabel(s State) string {
	switch s {
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half_open"
	}
	return "closed"
}

func stateValue(s State) float64 {
	switch s {
	case StateOpen:
		return 2
	case StateHalfOpen:
		return 1
	}
	return 0
}

// Collectors returns the client's metrics, to register on the service's
// registry:
//
//	cartsvc_catalog_cache_lookups_total{result="hit|miss|stale"}
//	cartsvc_catalog_cache_evictions_total
//	cartsvc_catalog_breaker_state              0 closed, 1 half-open, 2 open
//	cartsvc_catalog_breaker_transitions_total{to="open|half_open|closed"}
func (c *Client) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		c.metrics.lookups, c.metrics.evictions, c.metrics.transitions,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cartsvc_catalog_breaker_state",
			Help: "The productsvc circuit breaker's state: 0 closed, 1 half-open, 2 open (calls refused, carts served from snapshots).",
		}, func() float64 { return stateValue(c.breaker.State()) }),
	}
}
