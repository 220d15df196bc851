// Package uuidarg parses UUIDs that clients send, with errors naming the
// field.
package uuidarg

import (
	"github.com/google/uuid"

	"github.com/decoupledshop/shop/internal/shoperr"
)

// Parse returns s as a UUID. It accepts only the canonical 36-character
// form, and returns a shoperr.Invalid error naming field when s is empty or
// anything else.
func Parse(field, s string) (uuid.UUID, error) {
	if s == "" {
		return uuid.Nil, shoperr.Invalid(field, "is required")
	}
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return uuid.Nil, shoperr.Invalid(field, "must be a UUID like 123e4567-e89b-12d3-a456-426614174000")
	}
	return id, nil
}
