// Package input checks what clients send, the same way in both services:
// UUID arguments, with errors naming the field, and the request_id of a
// retry-safe write with the fingerprint of the request it names.
package input

import (
	"crypto/sha256"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/decoupledshop/shop/internal/shoperr"
)

// UUID returns s as a UUID. It accepts only the canonical 36-character
// form, and returns a shoperr.Invalid error naming field when s is empty or
// anything else.
func UUID(field, s string) (uuid.UUID, error) {
	if s == "" {
		return uuid.Nil, shoperr.Invalid(field, "is required")
	}
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return uuid.Nil, shoperr.Invalid(field, "must be a UUID like 123e4567-e89b-12d3-a456-426614174000")
	}
	return id, nil
}

// MaxRequestID is the longest request_id accepted, in characters.
const MaxRequestID = 64

// ErrRequestIDReused answers a request_id the caller already used, within
// the service's retention window, for a different request.
var ErrRequestIDReused = shoperr.Invalid("request_id", "was already used for a different request; use a new request_id for a new request")

// Fingerprint checks requestID (1 to MaxRequestID characters, no control
// characters) and returns the SHA-256 of procedure and req without its
// request_id field: two requests with one request_id are the same request
// when their fingerprints are equal.
func Fingerprint(procedure, requestID string, req proto.Message) ([]byte, error) {
	if n := utf8.RuneCountInString(requestID); n < 1 || n > MaxRequestID {
		return nil, shoperr.Invalid("request_id", "must be 1 to %d characters when set", MaxRequestID)
	}
	for _, r := range requestID {
		if unicode.IsControl(r) {
			return nil, shoperr.Invalid("request_id", "must not contain control characters")
		}
	}
	m := proto.Clone(req).ProtoReflect()
	m.Clear(m.Descriptor().Fields().ByName("request_id"))
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(m.Interface())
	if err != nil {
		return nil, fmt.Errorf("fingerprint the request: %w", err)
	}
	sum := sha256.Sum256(append([]byte(procedure+"\x00"), body...))
	return sum[:], nil
}
