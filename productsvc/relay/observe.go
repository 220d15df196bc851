package relay

import (
	"context"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/decoupledshop/shop/internal/telemetry"
)

// metrics counts the relay's calls and events per subscriber.
type metrics struct {
	batches, attempts, failures                       *prometheus.CounterVec
	delivered, redeliveries, releases, broughtForward *prometheus.CounterVec
	inFlight                                          *prometheus.GaugeVec
}

func newMetrics(subscribers []Subscriber) *metrics {
	label := []string{"subscriber"}
	m := &metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "productsvc_relay_batches_total",
			Help: "DeliverEvents calls the relay made, per subscriber.",
		}, label),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "productsvc_relay_attempts_total",
			Help: "Delivery attempts of single events (each event of each call), per subscriber.",
		}, label),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "productsvc_relay_failures_total",
			Help: "DeliverEvents calls that failed as a whole (their events are retried or split), per subscriber.",
		}, label),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "productsvc_relay_events_delivered_total",
			Help: "Events this replica's relay delivered (the subscriber gave a final answer), per subscriber.",
		}, label),
		redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "productsvc_relay_redeliveries_total",
			Help: "Events sent again after an earlier attempt (a failure, or a lease that ended), per subscriber.",
		}, label),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "productsvc_relay_lease_releases_total",
			Help: "Claimed events given back unsent when the relay stopped, per subscriber.",
		}, label),
		broughtForward: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "productsvc_relay_brought_forward_total",
			Help: "Events waiting for a retry made due at once because the subscriber answered again, per subscriber.",
		}, label),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "productsvc_relay_batches_in_flight",
			Help: "DeliverEvents calls of this replica's relay in flight now, per subscriber.",
		}, label),
	}
	for _, s := range subscribers { // every series exists from the start
		for _, c := range []*prometheus.CounterVec{m.batches, m.attempts, m.failures, m.delivered, m.redeliveries, m.releases, m.broughtForward} {
			c.WithLabelValues(s.Name)
		}
		m.inFlight.WithLabelValues(s.Name)
	}
	return m
}

// Collectors returns the relay's metrics, to register on the service's
// registry, each by subscriber: productsvc_relay_batches_total,
// productsvc_relay_attempts_total, productsvc_relay_failures_total,
// productsvc_relay_events_delivered_total,
// productsvc_relay_redeliveries_total,
// productsvc_relay_lease_releases_total,
// productsvc_relay_brought_forward_total and
// productsvc_relay_batches_in_flight. (The backlog and dead letters are
// read from the database at scrape time, see
// productsvc.NewBacklogCollector.)
func (r *Relay) Collectors() []prometheus.Collector {
	m := r.metrics
	return []prometheus.Collector{m.batches, m.attempts, m.failures, m.delivered, m.redeliveries, m.releases, m.broughtForward, m.inFlight}
}

// startDelivery counts a call to s with batch about to be made.
func (r *Relay) startDelivery(s *sender, batch []item) {
	r.metrics.inFlight.WithLabelValues(s.sub.Name).Inc()
	again := 0
	for _, it := range batch {
		if it.row.Attempts > 1 {
			again++
		}
	}
	if again > 0 {
		r.metrics.redeliveries.WithLabelValues(s.sub.Name).Add(float64(again))
	}
}

// deliverySpan starts the span of one DeliverEvents call for batch: in the
// trace of the request that caused the events when they share one (a
// product update, a category rename's many events), else a new trace;
// linked to each distinct stored traceparent either way (see
// telemetry.StartCaused).
func (r *Relay) deliverySpan(ctx context.Context, s *sender, batch []item) (context.Context, trace.Span) {
	causes := make([]string, len(batch))
	for i, it := range batch {
		causes[i] = it.event.GetTraceparent()
	}
	return telemetry.StartCaused(ctx, r.tracer, "relay.deliver", causes,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("shop.subscriber", s.sub.Name),
			attribute.Int("messaging.batch.message_count", len(batch)),
		))
}

// endDelivery counts a call of n events to s that ended with err, records
// the error on span, and ends it.
func (r *Relay) endDelivery(span trace.Span, s *sender, n int, err error) {
	r.metrics.inFlight.WithLabelValues(s.sub.Name).Dec()
	r.metrics.batches.WithLabelValues(s.sub.Name).Inc()
	r.metrics.attempts.WithLabelValues(s.sub.Name).Add(float64(n))
	if err != nil {
		r.metrics.failures.WithLabelValues(s.sub.Name).Inc()
		if span.IsRecording() {
			span.SetStatus(codes.Error, connect.CodeOf(err).String())
		}
	}
	span.End()
}
