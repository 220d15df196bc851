package pgdb

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// SQLSTATE codes this package tells apart.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeTooManyConnections   = "53300"
	codeAdminShutdown        = "57P01"
	codeCrashShutdown        = "57P02"
	codeCannotConnectNow     = "57P03"
	classConnectionException = "08"
)

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == codeSerializationFailure || pgErr.Code == codeDeadlockDetected)
}

// retryableBegin reports whether a failure before the transaction began is
// worth another attempt at once: a broken pooled connection (the pool
// replaces it) or a server that just refused a connection. A starved pool is
// not: the caller already waited AcquireTimeout.
func retryableBegin(err error) bool {
	return IsUnavailable(err) && !errors.Is(err, ErrPoolExhausted)
}

// IsUnavailable reports whether err means that the database could not serve
// the request now, so that the same request may succeed later: the server
// is unreachable, shutting down, starting up or out of connection slots
// (SQLSTATE class 08, 57P01, 57P02, 57P03, 53300), contention outlived
// InTx's retries (40001, 40P01), the connection broke
// (network errors, EOF, a closed connection or pool), no pooled connection
// was free in time (ErrPoolExhausted), or a commit got no answer
// (ErrCommitOutcomeUnknown). It is false for nil, for the caller's context errors (deadline or
// cancellation),
// and for every answer about the statement itself (constraint violations,
// syntax errors...), which are not transient.
func IsUnavailable(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrPoolExhausted), errors.Is(err, ErrCommitOutcomeUnknown):
		return true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false // the caller's own deadline or cancellation, not the database
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch pgErr.Code {
		case codeTooManyConnections, codeAdminShutdown, codeCrashShutdown, codeCannotConnectNow,
			codeSerializationFailure, codeDeadlockDetected:
			return true
		}
		return strings.HasPrefix(pgErr.Code, classConnectionException)
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, puddle.ErrClosedPool) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// IsUniqueViolation reports whether err is a unique_violation, and when
// constraint is not empty, one of that constraint (or unique index).
func IsUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != codeUniqueViolation {
		return false
	}
	return constraint == "" || pgErr.ConstraintName == constraint
}
