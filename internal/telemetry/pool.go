package telemetry

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector reads a pgxpool's statistics at scrape time.
type poolCollector struct {
	pool *pgxpool.Pool

	acquired, idle, total, max, constructing     *prometheus.Desc
	acquires, emptyAcquires, canceled, waitTotal *prometheus.Desc
}

// PoolCollector returns a collector of pool's statistics, read when
// scraped (nothing on the query path):
//
//	pgxpool_acquired_connections, pgxpool_idle_connections,
//	pgxpool_total_connections, pgxpool_constructing_connections,
//	pgxpool_max_connections                                    gauges
//	pgxpool_acquires_total, pgxpool_empty_acquires_total (had to wait),
//	pgxpool_canceled_acquires_total, pgxpool_acquire_wait_seconds_total   counters
func PoolCollector(pool *pgxpool.Pool) prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("pgxpool_"+name, help, nil, nil)
	}
	return &poolCollector{
		pool:          pool,
		acquired:      d("acquired_connections", "Connections currently in use."),
		idle:          d("idle_connections", "Idle connections in the pool."),
		total:         d("total_connections", "Connections open, in use, idle or being opened."),
		constructing:  d("constructing_connections", "Connections being opened."),
		max:           d("max_connections", "The pool's connection limit."),
		acquires:      d("acquires_total", "Successful acquisitions of a connection."),
		emptyAcquires: d("empty_acquires_total", "Acquisitions that had to wait for a connection (none idle)."),
		canceled:      d("canceled_acquires_total", "Acquisitions given up because their context ended."),
		waitTotal:     d("acquire_wait_seconds_total", "Time spent acquiring connections, in seconds."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.constructing, c.max, c.acquires, c.emptyAcquires, c.canceled, c.waitTotal} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	n := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	g(c.acquired, float64(s.AcquiredConns()))
	g(c.idle, float64(s.IdleConns()))
	g(c.total, float64(s.TotalConns()))
	g(c.constructing, float64(s.ConstructingConns()))
	g(c.max, float64(s.MaxConns()))
	n(c.acquires, float64(s.AcquireCount()))
	n(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	n(c.canceled, float64(s.CanceledAcquireCount()))
	n(c.waitTotal, s.AcquireDuration().Seconds())
}
