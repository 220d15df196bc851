package productsvc

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
)

// scrapeTimeout bounds the queries one scrape runs.
const scrapeTimeout = 2 * time.Second

// backlogCollector reads the outbox backlog and the dead letters from the
// database when scraped, so delivery's hot path does no bookkeeping.
type backlogCollector struct {
	q           *productdb.Queries
	subscribers []string
	depth, age  *prometheus.Desc
	dead        *prometheus.Desc
}

// NewBacklogCollector returns a collector that, at each scrape, reads per
// subscriber (each of subscribers, at 0 when it has nothing waiting, and
// any other found in the tables):
//
//	productsvc_outbox_depth{subscriber}               undelivered events
//	productsvc_outbox_oldest_age_seconds{subscriber}  how long the oldest has waited
//	productsvc_dead_letters{subscriber}               events given up on
//
// A failed query leaves its series out of that scrape (the database's
// trouble shows in pgxpool_* and the RPC error codes).
func NewBacklogCollector(db *pgxpool.Pool, subscribers []string) prometheus.Collector {
	label := []string{"subscriber"}
	return &backlogCollector{
		q: productdb.New(db), subscribers: subscribers,
		depth: prometheus.NewDesc("productsvc_outbox_depth", "Events in the outbox not yet delivered, per subscriber.", label, nil),
		age:   prometheus.NewDesc("productsvc_outbox_oldest_age_seconds", "Seconds since the oldest undelivered event was queued, per subscriber (0 when none waits).", label, nil),
		dead:  prometheus.NewDesc("productsvc_dead_letters", "Dead-lettered events waiting to be replayed or purged, per subscriber.", label, nil),
	}
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.age
	ch <- c.dead
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, sub string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, sub)
	}
	if rows, err := c.q.OutboxBacklog(ctx); err == nil {
		seen := map[string]bool{}
		for _, r := range rows {
			seen[r.Subscriber] = true
			gauge(c.depth, float64(r.Depth), r.Subscriber)
			gauge(c.age, max(r.OldestAgeSeconds, 0), r.Subscriber)
		}
		for _, sub := range c.subscribers {
			if !seen[sub] {
				gauge(c.depth, 0, sub)
				gauge(c.age, 0, sub)
			}
		}
	}
	if rows, err := c.q.DeadLetterCounts(ctx); err == nil {
		seen := map[string]bool{}
		for _, r := range rows {
			seen[r.Subscriber] = true
			gauge(c.dead, float64(r.Dead), r.Subscriber)
		}
		for _, sub := range c.subscribers {
			if !seen[sub] {
				gauge(c.dead, 0, sub)
			}
		}
	}
}
