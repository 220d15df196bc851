package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/decoupledshop/shop/internal/pgdb"

	"github.com/decoupledshop/shop/internal/server"
	"github.com/decoupledshop/shop/internal/shoperr"
)

func TestConnectError(t *testing.T) {
	t.Parallel()
	if err := server.ConnectError(nil); err != nil {
		t.Fatalf("ConnectError(nil) = %v, want nil", err)
	}
	own := connect.NewError(connect.CodeUnauthenticated, errors.New("token expired"))
	for _, tc := range []struct {
		name    string
		err     error
		code    connect.Code
		message string
	}{
		{"invalid", shoperr.Invalid("sku", "must not be empty"), connect.CodeInvalidArgument, "sku: must not be empty"},
		{"not found", shoperr.NotFound("cart not found"), connect.CodeNotFound, "cart not found"},
		{"already exists", shoperr.AlreadyExists("x"), connect.CodeAlreadyExists, "x"},
		{"failed precondition", shoperr.FailedPrecondition("x"), connect.CodeFailedPrecondition, "x"},
		{"aborted", fmt.Errorf("update: %w", shoperr.Aborted("version mismatch")), connect.CodeAborted, "version mismatch"},
		{"resource exhausted", shoperr.ResourceExhausted("x"), connect.CodeResourceExhausted, "x"},
		{"unavailable", shoperr.Unavailable("x"), connect.CodeUnavailable, "x"},
		{"permission denied", shoperr.PermissionDenied("x"), connect.CodePermissionDenied, "x"},
		{"unauthenticated", shoperr.Unauthenticated("x"), connect.CodeUnauthenticated, "x"},
		{"unknown domain code", &shoperr.Error{Code: "bogus", Message: "secret"}, connect.CodeInternal, "internal error"},
		{"own connect error", fmt.Errorf("auth: %w", own), connect.CodeUnauthenticated, "token expired"},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded, "context deadline exceeded"},
		{"canceled", context.Canceled, connect.CodeCanceled, "context canceled"},
		{"plain", errors.New("pq: secret"), connect.CodeInternal, "internal error"},
		{"unique violation", &pgconn.PgError{Code: "23505", Message: "secret"}, connect.CodeInternal, "internal error"},
		{"syntax error", &pgconn.PgError{Code: "42601"}, connect.CodeInternal, "internal error"},
		{"deadline inside pgx", fmt.Errorf("query: %w", &net.OpError{Op: "read", Err: context.DeadlineExceeded}), connect.CodeDeadlineExceeded, "context deadline exceeded"},
	} {
		ce, ok := errors.AsType[*connect.Error](server.ConnectError(tc.err))
		if !ok {
			t.Errorf("%s: ConnectError returned no *connect.Error", tc.name)
			continue
		}
		if ce.Code() != tc.code || ce.Message() != tc.message {
			t.Errorf("%s: got %v %q, want %v %q", tc.name, ce.Code(), ce.Message(), tc.code, tc.message)
		}
	}
}

// TestDatabaseOutagesAreUnavailable: every way the database can fail to
// serve a request for now reaches the client as Unavailable with a
// client-safe message, never as internal.
func TestDatabaseOutagesAreUnavailable(t *testing.T) {
	t.Parallel()
	const retry = "database temporarily unavailable; retry later"
	const unknown = "the database did not confirm the write, which may or may not have been applied; retry with the same request_id"
	pgErr := func(code string) error {
		return fmt.Errorf("insert cart item: %w", &pgconn.PgError{Severity: "FATAL", Code: code, Message: "secret detail"})
	}
	for _, tc := range []struct {
		name    string
		err     error
		message string
	}{
		{"admin shutdown 57P01", pgErr("57P01"), retry},
		{"crash shutdown 57P02", pgErr("57P02"), retry},
		{"cannot connect now 57P03", pgErr("57P03"), retry},
		{"too many connections 53300", pgErr("53300"), retry},
		{"connection failure 08006", pgErr("08006"), retry},
		{"connection does not exist 08003", pgErr("08003"), retry},
		{"serialization failure after retries 40001", pgErr("40001"), retry},
		{"deadlock after retries 40P01", pgErr("40P01"), retry},
		{"EOF", fmt.Errorf("begin transaction: %w", io.EOF), retry},
		{"unexpected EOF", fmt.Errorf("query: %w", io.ErrUnexpectedEOF), retry},
		{"conn closed", fmt.Errorf("query: %w", pgconn.ErrConnClosed), retry},
		{"closed pool", fmt.Errorf("acquire: %w", puddle.ErrClosedPool), retry},
		{"connection reset", fmt.Errorf("query: %w", &net.OpError{Op: "read", Net: "unix", Err: syscall.ECONNRESET}), retry},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, retry},
		{"pool exhausted", fmt.Errorf("acquire connection: %w", pgdb.ErrPoolExhausted), retry},
		{"commit outcome unknown", fmt.Errorf("commit transaction: %w: %w", pgdb.ErrCommitOutcomeUnknown, io.ErrUnexpectedEOF), unknown},
		{"commit outcome unknown at the deadline", fmt.Errorf("commit transaction: %w: %w", pgdb.ErrCommitOutcomeUnknown, context.DeadlineExceeded), unknown},
	} {
		ce, ok := errors.AsType[*connect.Error](server.ConnectError(tc.err))
		if !ok {
			t.Errorf("%s: ConnectError returned no *connect.Error", tc.name)
			continue
		}
		if ce.Code() != connect.CodeUnavailable || ce.Message() != tc.message {
			t.Errorf("%s: got %v %q, want unavailable %q", tc.name, ce.Code(), ce.Message(), tc.message)
		}
	}
}

func TestErrorsAreMappedWithoutLeakingInternals(t *testing.T) {
	t.Parallel()
	b := setup(t, server.Config{}, nil)
	const secret = "secret internal detail"
	for _, tr := range binaryTransports() {
		for _, tc := range []struct {
			failure string
			code    connect.Code
			message string
			logged  bool // the original error is logged with the procedure
		}{
			{"invalid", connect.CodeInvalidArgument, "name: must not be empty", false},
			{"wrapped-not-found", connect.CodeNotFound, "product not found", false},
			{"connect", connect.CodeFailedPrecondition, "category still has products", false},
			{"own-deadline", connect.CodeDeadlineExceeded, context.DeadlineExceeded.Error(), false},
			{"deadline", connect.CodeUnavailable, "a dependency did not answer in time; retry later", true}, // not the request's own
			{"canceled", connect.CodeUnavailable, "a dependency's call was cut off; retry later", true},     // not the request's own
			{"secret", connect.CodeInternal, "internal error", true},
			{"internal-code", connect.CodeInternal, "internal error", true},
			{"upstream", connect.CodeInternal, "internal error", true},
			{"panic", connect.CodeInternal, "internal error", true},
			{"database-down", connect.CodeUnavailable, "database temporarily unavailable; retry later", true},
		} {
			t.Run(tr.name+"/"+tc.failure, func(t *testing.T) {
				client := newTestClient[wrapperspb.StringValue, emptypb.Empty](b, tr, failProcedure)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if tc.failure == "own-deadline" {
					ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
				}
				defer cancel()
				_, err := client.CallUnary(ctx, connect.NewRequest(wrapperspb.String(tc.failure)))
				ce, ok := errors.AsType[*connect.Error](err)
				if !ok {
					t.Fatalf("Fail(%s): got %v, want a *connect.Error", tc.failure, err)
				}
				if ce.Code() != tc.code || ce.Message() != tc.message {
					t.Errorf("Fail(%s): got %v %q, want %v %q", tc.failure, ce.Code(), ce.Message(), tc.code, tc.message)
				}
				if strings.Contains(ce.Error(), secret) || strings.Contains(ce.Error(), "db-7") {
					t.Errorf("Fail(%s): client-visible error %q leaks internals", tc.failure, ce.Error())
				}
			})
		}
	}
	logs := b.logs.String()
	for _, want := range []string{
		"procedure=" + failProcedure,
		"pq: " + secret,
		"rpc handler panicked",
		"unexpected error",
		`level=WARN msg="rpc failed: dependency unavailable"`,
		"administrator command on db-7 (SQLSTATE 57P01)",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q; logs:\n%s", want, logs)
		}
	}
}
