// Package shoperr defines the shop's domain errors: a [Code] saying what kind
// of failure happened, the offending field when the failure is about input,
// and a message.
//
// By contract, the Field and Message of an [*Error] are SAFE TO SHOW TO
// CLIENTS: the server layer sends them verbatim. Never format internal details
// (SQL, driver errors, host names, stack traces, other users' data) into them;
// return a plain error for internal failures instead, which clients only ever
// see as a generic "internal error".
package shoperr

import (
	"errors"
	"fmt"
)

// Code classifies a domain error. The server layer maps each Code to exactly
// one Connect code, in one place.
type Code string

// Codes a domain error can carry. The zero Code is not a valid code.
const (
	// CodeInvalid means the input is malformed or out of range; Field names
	// the offending field. Maps to InvalidArgument.
	CodeInvalid Code = "invalid"
	// CodeNotFound means the thing does not exist or is not the caller's.
	CodeNotFound Code = "not_found"
	// CodeAlreadyExists means a create collided with an existing thing.
	CodeAlreadyExists Code = "already_exists"
	// CodeFailedPrecondition means the system is not in a state that allows
	// the operation (for example, deleting a category that still has products).
	CodeFailedPrecondition Code = "failed_precondition"
	// CodeAborted means a concurrency conflict, such as an expected version
	// that no longer matches; the client may re-read and retry.
	CodeAborted Code = "aborted"
	// CodeResourceExhausted means a limit or quota was hit.
	CodeResourceExhausted Code = "resource_exhausted"
	// CodeUnavailable means a dependency is down; the client may retry.
	CodeUnavailable Code = "unavailable"
	// CodePermissionDenied means the caller is known but not allowed.
	CodePermissionDenied Code = "permission_denied"
	// CodeUnauthenticated means the caller's identity could not be verified.
	CodeUnauthenticated Code = "unauthenticated"
	// CodeInternal is what [CodeOf] reports for any error that is not an
	// [*Error]. Clients see such errors only as a generic internal error, so
	// constructing an *Error with CodeInternal gains nothing.
	CodeInternal Code = "internal"
)

// Error is a domain error whose Field and Message are safe to show to clients.
type Error struct {
	// Code classifies the failure.
	Code Code
	// Field names the offending input field (for example "name" or
	// "price.amount_minor"); empty when the error is not about one field.
	Field string
	// Message is a client-safe, human-readable explanation.
	Message string
}

// Error renders "field: message" when Field is set, and the message alone
// otherwise.
func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Errorf returns an *Error with the given code and a formatted message. The
// formatted message must be client-safe (see the package documentation).
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns a CodeInvalid *Error naming the offending field, e.g.
// Invalid("name", "must not be empty") renders "name: must not be empty".
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound returns a CodeNotFound *Error with a formatted message.
func NotFound(format string, args ...any) *Error {
	return Errorf(CodeNotFound, format, args...)
}

// AlreadyExists returns a CodeAlreadyExists *Error with a formatted message.
func AlreadyExists(format string, args ...any) *Error {
	return Errorf(CodeAlreadyExists, format, args...)
}

// FailedPrecondition returns a CodeFailedPrecondition *Error with a formatted
// message.
func FailedPrecondition(format string, args ...any) *Error {
	return Errorf(CodeFailedPrecondition, format, args...)
}

// Aborted returns a CodeAborted *Error with a formatted message.
func Aborted(format string, args ...any) *Error {
	return Errorf(CodeAborted, format, args...)
}

// ResourceExhausted returns a CodeResourceExhausted *Error with a formatted
// message.
func ResourceExhausted(format string, args ...any) *Error {
	return Errorf(CodeResourceExhausted, format, args...)
}

// Unavailable returns a CodeUnavailable *Error with a formatted message.
func Unavailable(format string, args ...any) *Error {
	return Errorf(CodeUnavailable, format, args...)
}

// PermissionDenied returns a CodePermissionDenied *Error with a formatted
// message.
func PermissionDenied(format string, args ...any) *Error {
	return Errorf(CodePermissionDenied, format, args...)
}

// Unauthenticated returns a CodeUnauthenticated *Error with a formatted
// message.
func Unauthenticated(format string, args ...any) *Error {
	return Errorf(CodeUnauthenticated, format, args...)
}

// CodeOf returns the Code of the first *Error in err's chain (see
// [errors.As]), "" when err is nil, and CodeInternal for any other error.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return CodeInternal
}
