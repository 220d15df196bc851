package relay

import (
	"context"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/decoupledshop/shop/internal/telemetry"
)

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

// endDeliverySpan records the call's error, if any, and ends span.
func endDeliverySpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, connect.CodeOf(err).String())
	}
	span.End()
}
