package productsvc

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/decoupledshop/shop/internal/shoperr"
)

// Field limits, also enforced by CHECK constraints in the migrations.
const (
	maxCategoryName        = 100
	maxCategoryDescription = 2000
	maxProductName         = 200
	maxProductDescription  = 5000
	maxQuery               = 200
	maxBatchGet            = 100
)

var skuPattern = regexp.MustCompile(`^[A-Z0-9][A-Z0-9._-]{0,63}$`)

// checkName requires 1..max characters, not all blank, no control characters.
func checkName(field, s string, max int) error {
	if strings.TrimSpace(s) == "" {
		return shoperr.Invalid(field, "must not be empty")
	}
	return checkText(field, s, max)
}

// checkText requires valid UTF-8 (a request decoded from protobuf or JSON
// always is; a caller in-process may not be, and PostgreSQL refuses it) and
// allows at most max characters and no control characters other than
// newlines and tabs.
func checkText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return shoperr.Invalid(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return shoperr.Invalid(field, "must be at most %d characters, got %d", max, n)
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			return shoperr.Invalid(field, "must not contain control characters")
		}
	}
	return nil
}

func checkSKU(field, s string) error {
	if !skuPattern.MatchString(s) {
		return shoperr.Invalid(field, "must be 1 to 64 characters of A-Z, 0-9, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}
