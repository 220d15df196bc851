package server_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/decoupledshop/shop/internal/server"
)

// FuzzConnectError maps arbitrary PostgreSQL errors: the answer is always
// Unavailable (for the codes that mean "the database cannot serve now") or
// Internal with a fixed message, never the server's message, detail or
// hint.
func FuzzConnectError(f *testing.F) {
	for _, code := range []string{"57P01", "57P02", "57P03", "53300", "08006", "08P01", "40001", "40P01", "23505", "22021", "XX000", ""} {
		f.Add(code, "secret detail")
	}
	f.Fuzz(func(t *testing.T, code, secret string) {
		err := fmt.Errorf("query: %w", &pgconn.PgError{Severity: "ERROR", Code: code, Message: secret, Detail: secret, Hint: secret})
		ce, ok := errors.AsType[*connect.Error](server.ConnectError(err))
		if !ok {
			t.Fatalf("SQLSTATE %q: no *connect.Error", code)
		}
		transient := strings.HasPrefix(code, "08") || map[string]bool{"57P01": true, "57P02": true, "57P03": true, "53300": true, "40001": true, "40P01": true}[code]
		switch {
		case transient && ce.Code() != connect.CodeUnavailable, !transient && ce.Code() != connect.CodeInternal:
			t.Fatalf("SQLSTATE %q: %v, want unavailable=%t", code, ce.Code(), transient)
		case ce.Message() != "internal error" && ce.Message() != "database temporarily unavailable; retry later":
			t.Fatalf("SQLSTATE %q: the client sees %q, not one of the fixed messages", code, ce.Message())
		}
	})
}
