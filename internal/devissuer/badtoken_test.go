package devissuer_test

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	jose "github.com/go-jose/go-jose/v4"
)

func TestMintBadProducesEachKind(t *testing.T) {
	t.Parallel()
	iss := issuertest.New(t, testConfig())
	base := issuertest.UserClaims(t, iss, "alice")
	cur, _ := iss.KeyID(devissuer.KeyCurrent)
	unpub, _ := iss.KeyID(devissuer.KeyUnpublished)

	all := devissuer.AllBad()
	if len(all) < 15 {
		t.Fatalf("AllBad() has %d kinds, want at least 15", len(all))
	}
	for _, kind := range all {
		m := badToken{tok: issuertest.Bad(t, iss, kind, base), iss: iss, cur: cur, unpub: unpub}
		m.header, m.claims = decode(t, m.tok)
		check, ok := badTokenChecks[kind]
		if !ok {
			t.Errorf("kind %s has no check here", kind)
			continue
		}
		if !check.holds(t, m) {
			t.Errorf("%s: %s (header %v, claims %v)", kind, check.fails, m.header, m.claims)
		}
	}
	if base["roles"] == nil || len(base["roles"].([]string)) != 0 || base["aud"] != "shop-api" {
		t.Errorf("MintBad modified its base claims: %v", base)
	}
}

// badToken is one token MintBad made, decoded for badTokenChecks.
type badToken struct {
	tok            string
	header, claims map[string]any
	iss            *devissuer.Issuer
	cur, unpub     string // key ids of KeyCurrent and KeyUnpublished
}

func (b badToken) has(claim string) bool {
	_, ok := b.claims[claim]
	return ok
}

// badTokenChecks says, per kind, what makes a minted token that kind
// (holds) and what is wrong when it does not (fails).
var badTokenChecks = map[devissuer.Bad]struct {
	holds func(*testing.T, badToken) bool
	fails string
}{
	devissuer.BadExpired: {func(_ *testing.T, b badToken) bool {
		return b.claims["exp"].(float64) < float64(fixedNow.Unix())
	}, "exp not in the past"},
	devissuer.BadNotYetValid: {func(_ *testing.T, b badToken) bool {
		return b.claims["nbf"].(float64) > float64(fixedNow.Unix())
	}, "nbf not in the future"},
	devissuer.BadWrongAudience: {func(_ *testing.T, b badToken) bool {
		return b.claims["aud"] != "shop-api"
	}, "aud is the API"},
	devissuer.BadWrongIssuer: {func(_ *testing.T, b badToken) bool {
		return b.claims["iss"] != b.iss.URL()
	}, "iss is this issuer"},
	devissuer.BadAlgNone: {func(_ *testing.T, b badToken) bool {
		return b.header["alg"] == "none" && strings.HasSuffix(b.tok, ".")
	}, "not alg none with empty signature"},
	devissuer.BadKeyConfusion: {func(_ *testing.T, b badToken) bool {
		return b.header["alg"] == "HS256" && b.header["kid"] == b.cur
	}, "not HS256 with the current kid"},
	devissuer.BadUnknownKID: {func(t *testing.T, b badToken) bool {
		return b.header["kid"] == b.unpub && !slices.Contains(kids(fetchJWKS(t, b.iss)), b.unpub)
	}, "kid published or wrong"},
	devissuer.BadIDToken: {func(_ *testing.T, b badToken) bool {
		return b.header["typ"] == "JWT" && b.claims["aud"] == "shop-web" && b.claims["nonce"] != nil && b.claims["at_hash"] != nil
	}, "not an ID token"},
	devissuer.BadIDTokenForAPI: {func(_ *testing.T, b badToken) bool {
		return b.header["typ"] == "JWT" && b.claims["aud"] == "shop-api" && b.claims["nonce"] != nil
	}, "not an ID token for the API"},
	devissuer.BadLogoutToken: {func(_ *testing.T, b badToken) bool {
		return b.header["typ"] == "logout+jwt" && b.claims["events"] != nil
	}, "not a logout token"},
	devissuer.BadLogoutTokenForAPI: {func(_ *testing.T, b badToken) bool {
		return b.header["typ"] == "JWT" && b.claims["aud"] == "shop-api" && b.claims["events"] != nil
	}, "not a logout token for the API"},
	devissuer.BadTampered: {func(t *testing.T, b badToken) bool {
		jws, err := jose.ParseSignedCompact(b.tok, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			return false
		}
		set := fetchJWKS(t, b.iss)
		_, err = jws.Verify(set.Key(b.cur)[0])
		return err != nil && slices.Equal(b.claims["roles"].([]any), []any{"admin"})
	}, "does not parse, signature still valid, or payload unchanged"},
	devissuer.BadMissingType: {func(_ *testing.T, b badToken) bool {
		_, has := b.header["typ"]
		return !has
	}, "has typ"},
	devissuer.BadNoExpiry:  {func(_ *testing.T, b badToken) bool { return !b.has("exp") }, "has exp"},
	devissuer.BadNoSubject: {func(_ *testing.T, b badToken) bool { return !b.has("sub") }, "has sub"},
	devissuer.BadSubjectNUL: {func(_ *testing.T, b badToken) bool {
		return strings.Contains(b.claims["sub"].(string), "\x00")
	}, "no NUL in sub"},
	devissuer.BadSubjectControl: {func(_ *testing.T, b badToken) bool {
		return strings.Contains(b.claims["sub"].(string), "\x1b")
	}, "no control character in sub"},
	devissuer.BadSubjectInvalidUTF8: {func(_ *testing.T, b badToken) bool {
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(b.tok, ".")[1])
		return !utf8.Valid(payload) && bytes.Contains(payload, []byte("alice\xff"))
	}, "payload is valid UTF-8"},
	devissuer.BadSubjectEmpty: {func(_ *testing.T, b badToken) bool {
		return b.has("sub") && b.claims["sub"] == ""
	}, "sub not empty"},
	devissuer.BadSubjectTooLong: {func(_ *testing.T, b badToken) bool {
		return len(b.claims["sub"].(string)) > 255
	}, "sub not longer than 255 bytes"},
	devissuer.BadClientIDControl: {func(_ *testing.T, b badToken) bool {
		return strings.Contains(b.claims["client_id"].(string), "\x00")
	}, "no NUL in client_id"},
	devissuer.BadExpiryString: {func(_ *testing.T, b badToken) bool {
		_, isString := b.claims["exp"].(string)
		return isString
	}, "exp not a string"},
	devissuer.BadIssuedAtString: {func(_ *testing.T, b badToken) bool {
		_, isString := b.claims["iat"].(string)
		return isString
	}, "iat not a string"},
	devissuer.BadNoIssuedAt: {func(_ *testing.T, b badToken) bool { return !b.has("iat") }, "has iat"},
	devissuer.BadIssuedInFuture: {func(_ *testing.T, b badToken) bool {
		return b.claims["iat"].(float64) >= float64(fixedNow.Add(time.Hour).Unix()) && b.claims["nbf"].(float64) <= float64(fixedNow.Unix())
	}, "iat not an hour ahead, or nbf ahead too"},
}
