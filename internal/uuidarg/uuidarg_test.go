package uuidarg

import (
	"errors"
	"testing"

	"github.com/decoupledshop/shop/internal/shoperr"
)

func TestParse(t *testing.T) {
	t.Parallel()
	if id, err := Parse("id", "123e4567-e89b-12d3-a456-426614174000"); err != nil || id.String() != "123e4567-e89b-12d3-a456-426614174000" {
		t.Fatalf("canonical UUID: %v, %v", id, err)
	}
	for _, bad := range []string{"", "x", "{123e4567-e89b-12d3-a456-426614174000}", "123e4567e89b12d3a456426614174000", "urn:uuid:123e4567-e89b-12d3-a456-426614174000"} {
		_, err := Parse("product_id", bad)
		var se *shoperr.Error
		if !errors.As(err, &se) || se.Code != shoperr.CodeInvalid || se.Field != "product_id" {
			t.Errorf("Parse(%q) = %v, want Invalid naming product_id", bad, err)
		}
	}
}
