package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/shoperr"
)

var (
	// errInternal is the only thing a client learns about an unexpected error.
	errInternal = errors.New("internal error")
	// errDatabaseUnavailable is what a client learns about a database that
	// cannot serve now (down, restarting, out of connections, pool starved).
	errDatabaseUnavailable = errors.New("database temporarily unavailable; retry later")
	// errDependencyTimeout is what a client learns when a dependency timed
	// out while its own request still had time.
	errDependencyTimeout = errors.New("a dependency did not answer in time; retry later")
	// errDependencyCanceled is what a client learns when a dependency's
	// call was cancelled while its own request was live (a pool giving up
	// on a connection being made while the database restarts, say).
	errDependencyCanceled = errors.New("a dependency's call was cut off; retry later")
	// errCommitOutcomeUnknown is what a client learns about a commit that
	// got no answer.
	errCommitOutcomeUnknown = errors.New("the database did not confirm the write, which may or may not have been applied; retry with the same request_id")
)

// cause says what connectError found behind an error, and so whether and
// how the server logs it.
type cause int

const (
	causeExpected    cause = iota // a domain error or the caller's context: not logged
	causeUnavailable              // the database could not serve now: logged as a warning
	causeUnexpected               // a bug or unknown failure: logged as an error
)

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
//   - a commit whose outcome is unknown ([pgdb.ErrCommitOutcomeUnknown])
//     becomes Unavailable, telling the client to retry with the same
//     request_id;
//   - context.DeadlineExceeded and context.Canceled become DeadlineExceeded
//     and Canceled;
//   - a database that cannot serve now ([pgdb.IsUnavailable]: down,
//     restarting, out of connections, connection lost, pool starved)
//     becomes Unavailable "database temporarily unavailable; retry later";
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

// connectError implements ConnectError and also reports what it found
// behind err, which decides how the failure is logged.
func connectError(err error) (*connect.Error, cause) {
	if ce, ok := errors.AsType[*connect.Error](err); ok && !connect.IsWireError(ce) {
		return ce, causeExpected
	}
	if de, ok := errors.AsType[*shoperr.Error](err); ok {
		if code, ok := codes[de.Code]; ok {
			return connect.NewError(code, de), causeExpected
		}
		return connect.NewError(connect.CodeInternal, errInternal), causeUnexpected
	}
	switch {
	case errors.Is(err, pgdb.ErrCommitOutcomeUnknown):
		return connect.NewError(connect.CodeUnavailable, errCommitOutcomeUnknown), causeUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, context.DeadlineExceeded), causeExpected
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, context.Canceled), causeExpected
	case pgdb.IsUnavailable(err):
		return connect.NewError(connect.CodeUnavailable, errDatabaseUnavailable), causeUnavailable
	}
	return connect.NewError(connect.CodeInternal, errInternal), causeUnexpected
}

// errorMapper is the handler interceptor that runs every RPC error through
// connectError and logs, with their procedure and underlying cause, the
// unexpected ones (as errors) and database outages (as warnings). A
// context.DeadlineExceeded or context.Canceled while the request's context
// is still live is a dependency's timeout or cancellation (a starved pool,
// say), answered as Unavailable; a *connect.Error with that code is
// answered as it is.
type errorMapper struct {
	log *slog.Logger
}

func (m *errorMapper) mapError(ctx context.Context, procedure string, err error) error {
	if err == nil {
		return nil
	}
	ce, c := connectError(err)
	if _, own := errors.AsType[*connect.Error](err); !own && ctx.Err() == nil {
		// Not this request's deadline or cancellation (which the handler's
		// context carries), so a dependency's: a starved database pool, a
		// call with a shorter timeout, a connection attempt given up. The
		// client may retry.
		switch ce.Code() {
		case connect.CodeDeadlineExceeded:
			ce, c = connect.NewError(connect.CodeUnavailable, errDependencyTimeout), causeUnavailable
		case connect.CodeCanceled:
			ce, c = connect.NewError(connect.CodeUnavailable, errDependencyCanceled), causeUnavailable
		}
	}
	switch c {
	case causeUnexpected:
		m.log.ErrorContext(ctx, "rpc failed with unexpected error", "procedure", procedure, "error", err)
	case causeUnavailable:
		m.log.WarnContext(ctx, "rpc failed: dependency unavailable", "procedure", procedure, "error", err)
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
