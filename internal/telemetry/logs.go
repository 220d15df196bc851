package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/trace"

	"github.com/decoupledshop/shop/internal/auth"
)

// NewLogger returns a logger writing to out in format ("json", the
// default, or "text") at level ("debug", "info", the default, "warn" or
// "error"). Records logged with a context inside a span carry its trace_id.
// An invalid format or level is reported, and the default used instead.
func NewLogger(out io.Writer, format, level string) (*slog.Logger, error) {
	lvl, err := parseLevel(level)
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(out, opts)
	} else {
		h = slog.NewJSONHandler(out, opts)
	}
	return slog.New(traceHandler{h}), err
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo, fmt.Errorf("--log-level: %q is not debug, info, warn or error", s)
	}
	return l, nil
}

// traceHandler adds the trace_id of the record's context to each record.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// requestLog logs one line per RPC a handler serves, once it is answered:
//
//	msg "rpc", procedure, code ("ok" or the Connect code), duration,
//	protocol, caller (anonymous, user, admin or service), trace_id
//
// It never logs a user id, a request or response message, a header or a
// token: what identifies a shopper stays out of logs. Server faults
// (internal, unknown, data_loss) are logged at Error, unavailable and
// deadline_exceeded at Warn, everything else at Info.
type requestLog struct{ log *slog.Logger }

func (l *requestLog) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		start := time.Now()
		resp, err := next(ctx, req)
		l.record(ctx, req.Spec().Procedure, req.Peer().Protocol, start, err)
		return resp, err
	}
}

func (l *requestLog) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (l *requestLog) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		l.record(ctx, conn.Spec().Procedure, conn.Peer().Protocol, start, err)
		return err
	}
}

func (l *requestLog) record(ctx context.Context, procedure, protocol string, start time.Time, err error) {
	code, level := "ok", slog.LevelInfo
	if err != nil {
		c := connect.CodeOf(err)
		code = c.String()
		switch c {
		case connect.CodeInternal, connect.CodeUnknown, connect.CodeDataLoss:
			level = slog.LevelError
		case connect.CodeUnavailable, connect.CodeDeadlineExceeded:
			level = slog.LevelWarn
		}
	}
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.LogAttrs(ctx, level, "rpc",
		slog.String("procedure", procedure),
		slog.String("code", code),
		slog.Duration("duration", time.Since(start)),
		slog.String("protocol", protocol),
		slog.String("caller", CallerKind(ctx)),
	)
}

// CallerKind names the kind of caller of a request from its verified
// identity: "anonymous" (no token), "service", "admin" or "user". It
// never says which user.
func CallerKind(ctx context.Context) string {
	id, ok := auth.FromContext(ctx)
	switch {
	case !ok || id == nil:
		return "anonymous"
	case id.Service:
		return "service"
	case id.HasRole(auth.RoleAdmin):
		return "admin"
	}
	return "user"
}
