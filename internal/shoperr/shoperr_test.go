package shoperr_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/decoupledshop/shop/internal/shoperr"
)

func TestErrorRendersFieldAndMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  *shoperr.Error
		want string
	}{
		{"with field", shoperr.Invalid("name", "must not be empty"), "name: must not be empty"},
		{"formatted", shoperr.Invalid("page_size", "must be at most %d", 100), "page_size: must be at most 100"},
		{"without field", shoperr.NotFound("product %q not found", "p1"), `product "p1" not found`},
		{"literal", &shoperr.Error{Code: shoperr.CodeAborted, Field: "expected_version", Message: "is 3, current is 4"}, "expected_version: is 3, current is 4"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%s: Error() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestConstructorsSetCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  *shoperr.Error
		want shoperr.Code
	}{
		{shoperr.Invalid("f", "x"), shoperr.CodeInvalid},
		{shoperr.NotFound("x"), shoperr.CodeNotFound},
		{shoperr.AlreadyExists("x"), shoperr.CodeAlreadyExists},
		{shoperr.FailedPrecondition("x"), shoperr.CodeFailedPrecondition},
		{shoperr.Aborted("x"), shoperr.CodeAborted},
		{shoperr.ResourceExhausted("x"), shoperr.CodeResourceExhausted},
		{shoperr.Unavailable("x"), shoperr.CodeUnavailable},
		{shoperr.PermissionDenied("x"), shoperr.CodePermissionDenied},
		{shoperr.Unauthenticated("x"), shoperr.CodeUnauthenticated},
		{shoperr.Errorf(shoperr.CodeAborted, "x"), shoperr.CodeAborted},
	} {
		if tc.err.Code != tc.want {
			t.Errorf("%q: Code = %q, want %q", tc.err, tc.err.Code, tc.want)
		}
		if tc.err.Message != "x" {
			t.Errorf("%q: Message = %q, want %q", tc.err, tc.err.Message, "x")
		}
	}
}

func TestCodeOfUnwraps(t *testing.T) {
	t.Parallel()
	wrapped := fmt.Errorf("store: create product: %w", shoperr.AlreadyExists("sku taken"))
	joined := errors.Join(errors.New("other"), shoperr.Aborted("version mismatch"))
	for _, tc := range []struct {
		name string
		err  error
		want shoperr.Code
	}{
		{"nil", nil, ""},
		{"direct", shoperr.NotFound("x"), shoperr.CodeNotFound},
		{"wrapped", wrapped, shoperr.CodeAlreadyExists},
		{"joined", joined, shoperr.CodeAborted},
		{"plain error", errors.New("pq: boom"), shoperr.CodeInternal},
	} {
		if got := shoperr.CodeOf(tc.err); got != tc.want {
			t.Errorf("%s: CodeOf = %q, want %q", tc.name, got, tc.want)
		}
	}
}
