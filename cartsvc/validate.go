package cartsvc

import (
	"regexp"
	"strings"

	"github.com/decoupledshop/shop/internal/shoperr"
)

// checkQuantity requires min..MaxQuantity.
func checkQuantity(q, min int32) error {
	if q < min || q > MaxQuantity {
		return shoperr.Invalid("quantity", "must be between %d and %d", min, MaxQuantity)
	}
	return nil
}

var codePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{3,32}$`)

// parseCode returns a promo code in its stored upper-case form; codes are
// matched case-insensitively.
func parseCode(field, s string) (string, error) {
	if !codePattern.MatchString(s) {
		return "", shoperr.Invalid(field, "must be 3 to 32 characters of A-Z, 0-9, '-' or '_'")
	}
	return strings.ToUpper(s), nil
}
