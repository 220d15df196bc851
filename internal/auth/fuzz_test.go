package auth_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/devissuer"
)

// checkVerdict fails unless Verify's answer is a refusal wrapping
// ErrInvalidToken or an identity whose subject and client id are clean.
func checkVerdict(t *testing.T, id *auth.Identity, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("refusal %v does not wrap ErrInvalidToken (the middleware would not answer Unauthenticated)", err)
		}
		return
	}
	for name, s := range map[string]string{"sub": id.Subject, "client id": id.ClientID} {
		if name == "sub" && s == "" || len(s) > auth.MaxIdentifierBytes || !utf8.ValidString(s) ||
			strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }) {
			t.Fatalf("accepted a token with %s %q", name, s)
		}
	}
}

// FuzzVerify feeds arbitrary bearer tokens to a verifier of a real issuer:
// it never panics, and refuses junk with ErrInvalidToken (Unauthenticated).
func FuzzVerify(f *testing.F) {
	b := setup(f, nil)
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := b.verifier.Verify(t.Context(), raw)
		if err == nil {
			t.Fatalf("accepted a fuzzed token %q as %+v", raw, id)
		}
		checkVerdict(t, id, err)
	})
}

// FuzzClaims signs arbitrary payloads with the issuer's current key, so
// the signature holds and every claim check runs: Verify never panics, and
// it either refuses with ErrInvalidToken or returns an identity with a clean
// subject. "$ISS" in a payload stands for the issuer's URL, which changes
// with every run; the verifier's clock is 2027-03-01T12:00:00Z
// (1803902400).
func FuzzClaims(f *testing.F) {
	b := setup(f, nil)
	valid, err := json.Marshal(map[string]any{"iss": "$ISS", "sub": "alice", "aud": "shop-api", "exp": 1803903300, "iat": 1803902400, "client_id": "shop-web"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	sign := func(t testing.TB, payload []byte) string {
		tok, err := b.iss.MintPayload(devissuer.KeyCurrent, nil, bytes.ReplaceAll(payload, []byte("$ISS"), []byte(b.iss.URL())))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if _, err := b.verifier.Verify(f.Context(), sign(f, valid)); err != nil {
		f.Fatalf("the valid seed is refused (%v): the fuzzer would never reach the claim checks", err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		id, err := b.verifier.Verify(t.Context(), sign(t, payload))
		if err == nil && !utf8.Valid(payload) {
			t.Fatalf("accepted claims that are not UTF-8: %q", payload)
		}
		checkVerdict(t, id, err)
	})
}
