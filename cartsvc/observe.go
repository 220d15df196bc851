package cartsvc

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/internal/telemetry"
)

// observer is what cartsvc tells operators about receiving events beyond
// the counters of eventMetrics: a span per event and the end-to-end lag.
type observer struct {
	tracer trace.Tracer
	lag    prometheus.Histogram
}

// LagBuckets are the bounds, in seconds, of cartsvc_event_lag_seconds.
var LagBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

func newObserver(tracer trace.Tracer) *observer {
	return &observer{
		tracer: tracer,
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cartsvc_event_lag_seconds",
			Help:    "Seconds from a catalog change (the event's occurred_at, set in the change's transaction) to its first receipt here (applied, stale or ignored; not duplicates or dead letters).",
			Buckets: LagBuckets,
		}),
	}
}

// observerCollectors are the observer's metrics plus the DLQ gauge read
// from the database at scrape time. Every result and refusal series of
// eventMetrics exists from the start, at 0.
func (s *Service) observerCollectors() []prometheus.Collector {
	for _, o := range []outcome{outcomeApplied, outcomeUnused, outcomeUnknown, outcomeStale, outcomeDuplicate, outcomeDeadLettered} {
		s.metrics.results.WithLabelValues(string(o))
	}
	for _, reason := range []string{"rate", "size"} {
		s.metrics.refused.WithLabelValues(reason)
	}
	cs := []prometheus.Collector{s.obs.lag, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cartsvc_dead_letters",
		Help: "Poison events waiting in cartsvc's dead-letter queue to be replayed or purged (read at scrape time; -1 when the database cannot say).",
	}, s.countDeadLetters)}
	if s.carts != nil {
		cs = append(cs, s.carts.lookups)
	}
	return cs
}

// scrapeTimeout bounds the query of one scrape.
const scrapeTimeout = 2 * time.Second

func (s *Service) countDeadLetters() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	n, err := s.q.CountDeadLetters(ctx)
	if err != nil {
		return -1
	}
	return float64(n)
}

// applySpan starts the span of applying a delivered batch: in the trace of
// the request that caused its events when they share one (the events'
// stored traceparents), else a child of the delivery call; linked to each
// distinct cause either way (see telemetry.StartCaused).
func (s *Service) applySpan(ctx context.Context, events []*eventsv1.Event) (context.Context, trace.Span) {
	causes := make([]string, len(events))
	for i, ev := range events {
		causes[i] = ev.GetTraceparent()
	}
	return telemetry.StartCaused(ctx, s.obs.tracer, "cartsvc.apply_events", causes,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.Int("messaging.batch.message_count", len(events))))
}

// endApply records what the batch events came to: the lag of each first
// receipt (not duplicates or poison), and on span the number applied or
// the error; then it ends span.
func (s *Service) endApply(span trace.Span, events []*eventsv1.Event, got []received, err error) {
	applied := 0
	if err == nil {
		now := s.now()
		for i, r := range got {
			if r.out == outcomeApplied {
				applied++
			}
			if at := events[i].GetOccurredAt(); at != nil && r.out != outcomeDuplicate && r.out != outcomeDeadLettered {
				s.obs.lag.Observe(max(now.Sub(at.AsTime()).Seconds(), 0))
			}
		}
	}
	if span.IsRecording() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(attribute.Int("shop.events.applied", applied))
		}
	}
	span.End()
}

// eventMetrics counts what cartsvc did with the events it received.
type eventMetrics struct {
	results *prometheus.CounterVec
	refused *prometheus.CounterVec
}

func newEventMetrics() *eventMetrics {
	return &eventMetrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartsvc_events_total",
			Help: "Events received through EventSinkService or replayed from the dead-letter queue, by result: " +
				"applied, stale, duplicate, dead_lettered, unused (a known type cartsvc keeps nothing of) " +
				"and unknown (a type this build does not know, accepted and ignored).",
		}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartsvc_event_calls_refused_total",
			Help: "DeliverEvents calls refused with ResourceExhausted, by reason: rate (the caller's rate limit) or size (too many events or bytes).",
		}, []string{"reason"}),
	}
}

func (m *eventMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.results, m.refused}
}
