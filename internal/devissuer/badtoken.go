package devissuer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bad names a kind of deliberately invalid token minted by MintBad. Every
// kind must be refused by an access-token verifier configured for this
// issuer and its audience.
type Bad int

const (
	// BadExpired has exp one minute in the past.
	BadExpired Bad = iota + 1
	// BadNotYetValid has nbf (and iat) two minutes in the future: inside
	// the five-minute leeway some libraries allow, so only a strict check
	// refuses it.
	BadNotYetValid
	// BadWrongAudience is meant for another API.
	BadWrongAudience
	// BadWrongIssuer names another issuer but is signed by this one's key.
	BadWrongIssuer
	// BadAlgNone has "alg":"none" and an empty signature.
	BadAlgNone
	// BadKeyConfusion is HS256-signed with the current RSA public key (PEM)
	// as HMAC secret and that key's kid.
	BadKeyConfusion
	// BadUnknownKID is signed by a key that is never published.
	BadUnknownKID
	// BadIDToken is an ID token: typ JWT, aud = the web client, azp, nonce,
	// at_hash, no scope.
	BadIDToken
	// BadIDTokenForAPI is an ID token shape (nonce, at_hash, typ JWT) whose
	// aud is the API: only the ID-token claims give it away.
	BadIDTokenForAPI
	// BadLogoutToken is a back-channel logout token: typ logout+jwt, aud =
	// the web client, events, sid.
	BadLogoutToken
	// BadLogoutTokenForAPI is a logout token shape (events claim) with typ
	// JWT and the API audience.
	BadLogoutTokenForAPI
	// BadTampered is a valid token whose payload was changed afterwards
	// (roles admin, scope events:write added), keeping the signature.
	BadTampered
	// BadMissingType has no typ header.
	BadMissingType
	// BadNoExpiry has no exp claim.
	BadNoExpiry
	// BadNoSubject has no sub claim.
	BadNoSubject
	// BadSubjectNUL has a NUL byte in sub (a user id no database stores).
	BadSubjectNUL
	// BadSubjectControl has another control character (ESC) in sub.
	BadSubjectControl
	// BadSubjectInvalidUTF8 has sub bytes that are not UTF-8 (a JSON
	// decoder would quietly turn them into U+FFFD).
	BadSubjectInvalidUTF8
	// BadSubjectEmpty has "sub": "".
	BadSubjectEmpty
	// BadSubjectTooLong has a sub of 256 bytes.
	BadSubjectTooLong
	// BadClientIDControl has a NUL byte in client_id.
	BadClientIDControl
	// BadExpiryString has exp as a JSON string of a valid time.
	BadExpiryString
	// BadIssuedAtString has iat as a JSON string of a valid time.
	BadIssuedAtString
	// BadNoIssuedAt has no iat claim (RFC 9068 requires it).
	BadNoIssuedAt
	// BadIssuedInFuture has iat an hour ahead (nbf and exp as usual).
	BadIssuedInFuture
)

// badKind says how MintBad makes one kind of bad token: edit makes the
// claims bad and the token is then minted as usual; mint, when set instead,
// makes the token bad some other way (header, key, signature, encoding).
type badKind struct {
	name string
	edit func(i *Issuer, c Claims, now time.Time)
	mint func(i *Issuer, c Claims, now time.Time) (string, error)
}

var badKinds = map[Bad]badKind{
	BadExpired: {name: "expired", edit: func(i *Issuer, c Claims, now time.Time) {
		c["iat"] = now.Add(-i.ttl - time.Minute).Unix()
		c["nbf"] = c["iat"]
		c["exp"] = now.Add(-time.Minute).Unix()
	}},
	BadNotYetValid: {name: "not-yet-valid", edit: func(i *Issuer, c Claims, now time.Time) {
		c["iat"] = now.Add(2 * time.Minute).Unix()
		c["nbf"] = c["iat"]
		c["exp"] = now.Add(2*time.Minute + i.ttl).Unix()
	}},
	BadWrongAudience: {name: "wrong-audience", edit: setClaim("aud", "some-other-api")},
	BadWrongIssuer:   {name: "wrong-issuer", edit: setClaim("iss", "https://issuer.invalid")},
	BadAlgNone:       {name: "alg-none", mint: mintWithHeader(KeyCurrent, Header{"alg": "none"})},
	BadKeyConfusion:  {name: "hs256-key-confusion", mint: mintWithHeader(KeyCurrent, Header{"alg": "HS256"})},
	BadUnknownKID:    {name: "unknown-kid", mint: mintWithHeader(KeyUnpublished, nil)},
	BadIDToken: {name: "id-token", mint: func(i *Issuer, c Claims, now time.Time) (string, error) {
		return i.mintIDToken(c, WebClientID, now)
	}},
	BadIDTokenForAPI: {name: "id-token-api-audience", mint: func(i *Issuer, c Claims, now time.Time) (string, error) {
		return i.mintIDToken(c, i.audience, now)
	}},
	BadLogoutToken: {name: "logout-token", mint: func(i *Issuer, c Claims, _ time.Time) (string, error) {
		return i.mintLogoutToken(c, TypeLogoutToken, WebClientID)
	}},
	BadLogoutTokenForAPI: {name: "logout-token-api-audience", mint: func(i *Issuer, c Claims, _ time.Time) (string, error) {
		return i.mintLogoutToken(c, TypeJWT, i.audience)
	}},
	BadTampered:    {name: "tampered", mint: (*Issuer).mintTampered},
	BadMissingType: {name: "missing-typ", mint: mintWithHeader(KeyCurrent, Header{"typ": nil})},
	BadNoExpiry:    {name: "no-exp", edit: deleteClaim("exp")},
	BadNoSubject:   {name: "no-sub", edit: deleteClaim("sub")},
	BadSubjectNUL: {name: "sub-nul", edit: func(_ *Issuer, c Claims, _ time.Time) {
		c["sub"] = fmt.Sprint(c["sub"], "\x00")
	}},
	BadSubjectControl: {name: "sub-control-character", edit: func(_ *Issuer, c Claims, _ time.Time) {
		c["sub"] = fmt.Sprint(c["sub"], "\x1b[2J")
	}},
	BadSubjectInvalidUTF8: {name: "sub-invalid-utf8", mint: (*Issuer).mintInvalidUTF8Subject},
	BadSubjectEmpty:       {name: "sub-empty", edit: setClaim("sub", "")},
	BadSubjectTooLong:     {name: "sub-too-long", edit: setClaim("sub", strings.Repeat("u", 256))},
	BadClientIDControl: {name: "client-id-nul", edit: func(_ *Issuer, c Claims, _ time.Time) {
		c["client_id"] = fmt.Sprint(c["client_id"], "\x00")
	}},
	BadExpiryString: {name: "exp-string", edit: func(i *Issuer, c Claims, now time.Time) {
		c["exp"] = strconv.FormatInt(now.Add(i.ttl).Unix(), 10)
	}},
	BadIssuedAtString: {name: "iat-string", edit: func(_ *Issuer, c Claims, now time.Time) {
		c["iat"] = strconv.FormatInt(now.Unix(), 10)
	}},
	BadNoIssuedAt: {name: "no-iat", edit: deleteClaim("iat")},
	BadIssuedInFuture: {name: "iat-in-future", edit: func(_ *Issuer, c Claims, now time.Time) {
		c["iat"] = now.Add(time.Hour).Unix()
		c["nbf"] = now.Unix()
	}},
}

// String names the kind (e.g. "alg-none").
func (b Bad) String() string {
	if k, ok := badKinds[b]; ok {
		return k.name
	}
	return fmt.Sprintf("Bad(%d)", int(b))
}

// AllBad lists every kind of bad token, in declaration order.
func AllBad() []Bad {
	all := slices.Collect(maps.Keys(badKinds))
	slices.Sort(all)
	return all
}

// MintBad returns a token of the given bad kind built from a copy of base
// (typically UserClaims or ServiceClaims), which it does not modify.
func (i *Issuer) MintBad(kind Bad, base Claims) (string, error) {
	k, ok := badKinds[kind]
	if !ok {
		return "", fmt.Errorf("devissuer: unknown bad token kind %d", int(kind))
	}
	c := maps.Clone(base)
	if c == nil {
		c = Claims{}
	}
	if k.mint != nil {
		return k.mint(i, c, i.now())
	}
	k.edit(i, c, i.now())
	return i.Mint(KeyCurrent, nil, c)
}

func setClaim(name string, value any) func(*Issuer, Claims, time.Time) {
	return func(_ *Issuer, c Claims, _ time.Time) { c[name] = value }
}

func deleteClaim(name string) func(*Issuer, Claims, time.Time) {
	return func(_ *Issuer, c Claims, _ time.Time) { delete(c, name) }
}

func mintWithHeader(k Key, header Header) func(*Issuer, Claims, time.Time) (string, error) {
	return func(i *Issuer, c Claims, _ time.Time) (string, error) { return i.Mint(k, header, c) }
}

// mintIDToken mints an ID token (typ JWT, azp, nonce, at_hash, auth_time,
// no scope or client_id) for aud.
func (i *Issuer) mintIDToken(c Claims, aud string, now time.Time) (string, error) {
	c["aud"] = aud
	c["azp"] = WebClientID
	c["nonce"] = "n-0S6_WzA2Mj"
	c["at_hash"] = "77QmUPtjPfzWtF2AnpK9RQ"
	c["auth_time"] = now.Unix()
	delete(c, "scope")
	delete(c, "client_id")
	return i.Mint(KeyCurrent, Header{"typ": TypeJWT}, c)
}

// mintLogoutToken mints a back-channel logout token (events, sid, no
// scope) of type typ for aud.
func (i *Issuer) mintLogoutToken(c Claims, typ, aud string) (string, error) {
	c["aud"] = aud
	c["events"] = map[string]any{BackChannelLogoutEvent: map[string]any{}}
	c["sid"] = "08a5019c-17e1-4977-8f42-65a12843ea02"
	delete(c, "scope")
	return i.Mint(KeyCurrent, Header{"typ": typ}, c)
}

// mintTampered mints a valid token, then swaps in a payload granting admin
// and events:write while keeping the signature.
func (i *Issuer) mintTampered(c Claims, _ time.Time) (string, error) {
	tok, err := i.Mint(KeyCurrent, nil, c)
	if err != nil {
		return "", err
	}
	c["roles"] = []string{"admin"}
	scope, _ := c["scope"].(string)
	c["scope"] = strings.TrimSpace(scope + " events:write")
	cb, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("devissuer: marshal claims: %w", err)
	}
	parts := strings.Split(tok, ".")
	return parts[0] + "." + b64(cb) + "." + parts[2], nil
}

// mintInvalidUTF8Subject signs a payload whose sub holds bytes that are
// not UTF-8 (json.Marshal would have replaced them).
func (i *Issuer) mintInvalidUTF8Subject(c Claims, _ time.Time) (string, error) {
	const marker = "INVALID-UTF8-MARKER"
	c["sub"] = marker
	cb, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("devissuer: marshal claims: %w", err)
	}
	return i.MintPayload(KeyCurrent, nil, bytes.Replace(cb, []byte(marker), []byte("alice\xff\xfe"), 1))
}
