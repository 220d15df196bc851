package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	// IssuedAtLeeway is how far in the future a token's iat may be, for
	// clocks a little ahead of ours; exp and nbf get no leeway.
	IssuedAtLeeway = 60 * time.Second
	// MaxIdentifierBytes bounds a token's sub and client id.
	MaxIdentifierBytes = 255

	// maxNumericDate (year 5138) keeps time conversions of exp, iat and nbf
	// from overflowing.
	maxNumericDate = 1e11
)

// notAccessTokenClaims are claims only ID tokens and logout tokens carry.
var notAccessTokenClaims = [...]string{"nonce", "at_hash", "c_hash", "events"}

// identity reads who a verified token names from its claims: sub, the
// client id (client_id, else azp), scopes and roles.
func (v *Verifier) identity(subject string, claims map[string]json.RawMessage) (*Identity, error) {
	id := &Identity{Subject: subject}
	var err error
	if id.ClientID, err = stringClaim(claims, "client_id"); err == nil && id.ClientID == "" {
		id.ClientID, err = stringClaim(claims, "azp")
	}
	if err != nil {
		return nil, invalid("%v", err)
	}
	if id.ClientID != "" {
		if err := checkIdentifier(id.ClientID); err != nil {
			return nil, invalid("client id: %v", err)
		}
	}
	if id.Scopes, err = stringsClaim(claims["scope"], true); err != nil {
		return nil, invalid("scope: %v", err)
	}
	if id.Roles, err = v.lookupRoles(claims); err != nil {
		return nil, invalid("%s: %v", v.rolesClaim, err)
	}
	id.Service = id.ClientID != "" && id.Subject == id.ClientID
	return id, nil
}

// checkTimes checks what go-oidc leaves lax: exp and iat must be JSON
// numbers (go-oidc also reads numeric strings), iat is required and at most
// IssuedAtLeeway ahead, and nbf (optional) is a number not after now.
func (v *Verifier) checkTimes(claims map[string]json.RawMessage) error {
	now := v.now()
	if _, err := numericDate(claims, "exp"); err != nil {
		return err
	}
	iat, err := numericDate(claims, "iat")
	if err != nil {
		return err
	}
	if iat.After(now.Add(IssuedAtLeeway)) {
		return fmt.Errorf("issued in the future (%v)", iat.UTC())
	}
	if _, ok := claims["nbf"]; ok {
		nbf, err := numericDate(claims, "nbf")
		if err != nil {
			return err
		}
		if now.Before(nbf) {
			return fmt.Errorf("not valid before %v", nbf.UTC())
		}
	}
	return nil
}

// numericDate reads a required RFC 7519 NumericDate: a JSON number of
// seconds since the epoch, possibly fractional.
func numericDate(claims map[string]json.RawMessage, name string) (time.Time, error) {
	raw, ok := claims[name]
	if !ok {
		return time.Time{}, fmt.Errorf("no %s", name)
	}
	var f float64
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) || json.Unmarshal(raw, &f) != nil {
		return time.Time{}, fmt.Errorf("%s is not a number", name)
	}
	if f > maxNumericDate || f < -maxNumericDate {
		return time.Time{}, fmt.Errorf("%s out of range", name)
	}
	return time.Unix(0, int64(f*float64(time.Second))), nil
}

// checkIdentifier checks a subject or client id like any other input: 1 to
// MaxIdentifierBytes bytes of valid UTF-8 without control characters (NUL
// included) or U+FFFD (what a JSON decoder makes of invalid escapes).
func checkIdentifier(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxIdentifierBytes:
		return fmt.Errorf("longer than %d bytes", MaxIdentifierBytes)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("contains %U", r)
		}
	}
	return nil
}

// normalizeType lower-cases a typ value and drops an "application/" prefix
// (RFC 7515 section 4.1.9).
func normalizeType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	return strings.TrimPrefix(t, "application/")
}

func headerType(h jose.Header) (string, error) {
	v, ok := h.ExtraHeaders[jose.HeaderType]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", errors.New("typ is not a string")
	}
	return normalizeType(s), nil
}

func stringClaim(claims map[string]json.RawMessage, name string) (string, error) {
	raw, ok := claims[name]
	if !ok {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s is not a string", name)
	}
	return s, nil
}

// stringsClaim reads an array of strings, or one string (split on spaces
// when split is set, as for "scope"). Absent or null is nil.
func stringsClaim(raw json.RawMessage, split bool) ([]string, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if split {
			return strings.Fields(s), nil
		}
		if s == "" {
			return nil, nil
		}
		return []string{s}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("want a string or an array of strings")
	}
	return list, nil
}

// lookupRoles finds the roles claim: the whole configured name as a
// top-level claim first (names like "https://example.com/roles" contain
// dots), else the dotted path. A missing claim or path means no roles; a
// claim of the wrong type is an error.
func (v *Verifier) lookupRoles(claims map[string]json.RawMessage) ([]string, error) {
	if raw, ok := claims[v.rolesClaim]; ok {
		return stringsClaim(raw, false)
	}
	if len(v.rolesPath) < 2 {
		return nil, nil
	}
	level := claims
	for i, name := range v.rolesPath {
		raw, ok := level[name]
		if !ok {
			return nil, nil
		}
		if i == len(v.rolesPath)-1 {
			return stringsClaim(raw, false)
		}
		level = nil
		if err := json.Unmarshal(raw, &level); err != nil {
			return nil, fmt.Errorf("%s is not an object", strings.Join(v.rolesPath[:i+1], "."))
		}
	}
	return nil, nil
}
