package cartsvc

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/internal/telemetry"
)

// applySpan starts the span of applying a delivered batch: in the trace of
// the request that caused its events when they share one (the events'
// stored traceparents), else a child of the delivery call; linked to each
// distinct cause either way (see telemetry.StartCaused).
func (s *Service) applySpan(ctx context.Context, events []*eventsv1.Event) (context.Context, trace.Span) {
	causes := make([]string, len(events))
	for i, ev := range events {
		causes[i] = ev.GetTraceparent()
	}
	return telemetry.StartCaused(ctx, s.tracer, "cartsvc.apply_events", causes,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.Int("messaging.batch.message_count", len(events))))
}

// endApplySpan records what the batch came to and ends span.
func endApplySpan(span trace.Span, got []received, err error) {
	if span.IsRecording() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		} else {
			applied := 0
			for _, r := range got {
				if r.out == outcomeApplied {
					applied++
				}
			}
			span.SetAttributes(attribute.Int("shop.events.applied", applied))
		}
	}
	span.End()
}
