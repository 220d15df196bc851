package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceContext is the W3C Trace Context format, the one stored with events.
var traceContext propagation.TraceContext

// Traceparent returns the W3C traceparent header value of the span in ctx
// ("00-<trace-id>-<span-id>-<flags>"), or "" when ctx is in no trace. It is
// what the outbox stores with each event, so that the delivery and the
// receiver's work join the trace of the request that caused it.
func Traceparent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	traceContext.Inject(ctx, c)
	return c["traceparent"]
}

// SpanContextOf parses a stored W3C traceparent; the result is invalid for
// "" or a malformed value (a trace is never a reason to refuse anything).
func SpanContextOf(traceparent string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	ctx := traceContext.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	return trace.SpanContextFromContext(ctx)
}

// StartCaused starts a span for work caused by stored events, named name,
// with a link to each distinct valid traceparent among causes:
//
//   - when the causes belong to one trace, the span joins it: a child of
//     the span in ctx if that is in the same trace already, else a child of
//     the first cause (linked to the span in ctx, if any);
//   - when they belong to several traces (a batch from many requests) or
//     none, the span is a child of the span in ctx, or a new root.
//
// The relay's delivery span and the receiver's apply span use it, so a
// trace runs from the request that changed the catalog to the carts it
// changed.
func StartCaused(ctx context.Context, tracer trace.Tracer, name string, causes []string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	current := trace.SpanContextFromContext(ctx)
	var parent trace.SpanContext
	one := true
	links := make([]trace.Link, 0, 1)
	for _, tp := range causes {
		sc := SpanContextOf(tp)
		if !sc.IsValid() || seen(links, sc) {
			continue
		}
		links = append(links, trace.Link{SpanContext: sc})
		switch {
		case !parent.IsValid():
			parent = sc
		case parent.TraceID() != sc.TraceID():
			one = false
		}
	}
	if one && parent.IsValid() && current.TraceID() != parent.TraceID() {
		if current.IsValid() {
			links = append(links, trace.Link{SpanContext: current})
		}
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	if len(links) > 0 {
		opts = append(opts, trace.WithLinks(links...))
	}
	return tracer.Start(ctx, name, opts...)
}

func seen(links []trace.Link, sc trace.SpanContext) bool {
	for _, l := range links {
		if l.SpanContext.Equal(sc) {
			return true
		}
	}
	return false
}
