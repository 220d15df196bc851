package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/internal/shoperr"
)

// errInternal is the only thing a client learns about an unexpected error.
var errInternal = errors.New("internal error")

// codes maps each domain code to its Connect code. shoperr.CodeInternal and
// unknown codes are absent on purpose: they become a generic internal error.
var codes = map[shoperr.Code]connect.Code{
	shoperr.CodeInvalid:            connect.CodeInvalidArgument,
	shoperr.CodeNotFound:           connect.CodeNotFound,
	shoperr.CodeAlreadyExists:      connect.CodeAlreadyExists,
	shoperr.CodeFailedPrecondition: connect.CodeFailedPrecondition,
	shoperr.CodeAborted:            connect.CodeAborted,
	shoperr.CodeResourceExhausted:  connect.CodeResourceExhausted,
	shoperr.CodeUnavailable:        connect.CodeUnavailable,
	shoperr.CodePermissionDenied:   connect.CodePermissionDenied,
	shoperr.CodeUnauthenticated:    connect.CodeUnauthenticated,
}

// ConnectError is the one place an error becomes what a client sees. It
// returns nil for nil, and otherwise a *connect.Error:
//   - a *connect.Error built in this process passes through unchanged;
//   - a *shoperr.Error gets its mapped code (CodeInvalid → InvalidArgument, …)
//     and its safe "field: message" text, without any wrapping context;
//   - context.DeadlineExceeded and context.Canceled become DeadlineExceeded
//     and Canceled;
//   - anything else, including a *connect.Error received from another service
//     (its code describes that other call, so the caller must translate it)
//     becomes Internal with the message "internal error".
//
// ConnectError does not log; use it in code that logs the original error
// itself (the handler options from [HandlerOptions] do).
func ConnectError(err error) error {
	if err == nil {
		return nil
	}
	ce, _ := connectError(err)
	return ce
}

// connectError implements ConnectError and also reports whether err was
// unexpected, i.e. hidden behind a generic internal error and worth logging.
func connectError(err error) (ce *connect.Error, unexpected bool) {
	if ce, ok := errors.AsType[*connect.Error](err); ok && !connect.IsWireError(ce) {
		return ce, false
	}
	if de, ok := errors.AsType[*shoperr.Error](err); ok {
		if code, ok := codes[de.Code]; ok {
			return connect.NewError(code, de), false
		}
		return connect.NewError(connect.CodeInternal, errInternal), true
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, context.DeadlineExceeded), false
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, context.Canceled), false
	}
	return connect.NewError(connect.CodeInternal, errInternal), true
}

// errorMapper is the handler interceptor that runs every RPC error through
// connectError and logs the unexpected ones with their procedure.
type errorMapper struct {
	log *slog.Logger
}

func (m *errorMapper) mapError(ctx context.Context, procedure string, err error) error {
	if err == nil {
		return nil
	}
	ce, unexpected := connectError(err)
	if unexpected {
		m.log.ErrorContext(ctx, "rpc failed with unexpected error", "procedure", procedure, "error", err)
	}
	return ce
}

func (m *errorMapper) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		res, err := next(ctx, req)
		if err != nil {
			return nil, m.mapError(ctx, req.Spec().Procedure, err)
		}
		return res, nil
	}
}

func (m *errorMapper) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (m *errorMapper) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return m.mapError(ctx, conn.Spec().Procedure, next(ctx, conn))
	}
}

// recoverPanic turns a handler panic into a generic internal error, logging
// the panic value and stack with the procedure.
func recoverPanic(log *slog.Logger) func(context.Context, connect.Spec, http.Header, any) error {
	return func(ctx context.Context, spec connect.Spec, _ http.Header, v any) error {
		log.ErrorContext(ctx, "rpc handler panicked", "procedure", spec.Procedure, "panic", v, "stack", string(debug.Stack()))
		return connect.NewError(connect.CodeInternal, errInternal)
	}
}
