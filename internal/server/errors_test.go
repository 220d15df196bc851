package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"

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
