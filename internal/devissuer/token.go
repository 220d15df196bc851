package devissuer

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
)

// Claims is a JWT claims set, written into a token as given.
type Claims map[string]any

// Header holds JOSE header parameters for Mint. A parameter set to nil is
// removed from the header.
type Header map[string]any

// Token types (the JOSE "typ" header).
const (
	// TypeAccessToken is the RFC 9068 access-token type.
	TypeAccessToken = "at+jwt"
	// TypeJWT is the generic type that ID tokens (and many providers' access
	// tokens) carry.
	TypeJWT = "JWT"
	// TypeLogoutToken is the OIDC back-channel logout token type.
	TypeLogoutToken = "logout+jwt"
)

// BackChannelLogoutEvent is the event a logout token's "events" claim names.
const BackChannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

var errNotBound = errors.New("devissuer: issuer has no URL yet (not started)")

// UserClaims returns the access-token claims the password grant issues for
// username now: iss, sub (Subject(username)), aud, exp, iat, nbf, jti,
// client_id (WebClientID), scope (UserScope), roles (always an array),
// preferred_username and email (when set). It fails for an unknown user or
// an issuer that is not started.
func (i *Issuer) UserClaims(username string) (Claims, error) {
	u, ok := i.users[username]
	if !ok {
		return nil, fmt.Errorf("devissuer: unknown user %q", username)
	}
	c, err := i.baseClaims(Subject(username), WebClientID, UserScope, u.Roles)
	if err != nil {
		return nil, err
	}
	c["preferred_username"] = username
	if u.Email != "" {
		c["email"] = u.Email
	}
	return c, nil
}

// ServiceClaims returns the access-token claims the client-credentials
// grant issues for clientID now: sub == client_id, scope = the given scopes
// (all configured scopes when none are given), roles when configured. It
// fails for an unknown client, a scope the client may not have, or an issuer
// that is not started.
func (i *Issuer) ServiceClaims(clientID string, scopes ...string) (Claims, error) {
	cl, ok := i.clients[clientID]
	if !ok {
		return nil, fmt.Errorf("devissuer: unknown client %q", clientID)
	}
	if len(scopes) == 0 {
		scopes = cl.Scopes
	}
	for _, s := range scopes {
		if !slices.Contains(cl.Scopes, s) {
			return nil, fmt.Errorf("devissuer: client %q may not have scope %q", clientID, s)
		}
	}
	c, err := i.baseClaims(clientID, clientID, strings.Join(scopes, " "), cl.Roles)
	if err != nil {
		return nil, err
	}
	if len(cl.Roles) == 0 {
		delete(c, "roles")
	}
	return c, nil
}

func (i *Issuer) baseClaims(sub, clientID, scope string, roles []string) (Claims, error) {
	iss := i.URL()
	if iss == "" {
		return nil, errNotBound
	}
	now := i.now()
	jti, err := newJTI()
	if err != nil {
		return nil, err
	}
	if roles == nil {
		roles = []string{}
	}
	return Claims{
		"iss":       iss,
		"sub":       sub,
		"aud":       i.audience,
		"exp":       now.Add(i.ttl).Unix(),
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"jti":       jti,
		"client_id": clientID,
		"scope":     scope,
		"roles":     slices.Clone(roles),
	}, nil
}

func newJTI() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("devissuer: token id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// UserToken returns an access token for username, as the password grant
// issues it.
func (i *Issuer) UserToken(username string) (string, error) {
	c, err := i.UserClaims(username)
	if err != nil {
		return "", err
	}
	return i.Mint(KeyCurrent, nil, c)
}

// ServiceToken returns a service access token for clientID, as the
// client-credentials grant issues it (all configured scopes).
func (i *Issuer) ServiceToken(clientID string) (string, error) {
	c, err := i.ServiceClaims(clientID)
	if err != nil {
		return "", err
	}
	return i.Mint(KeyCurrent, nil, c)
}

// Mint returns a compact JWS of claims with full control of the header.
// The header starts as {"alg":"RS256","kid":<kid of key>,"typ":"at+jwt"}
// and header overrides it (nil removes a parameter). The token is signed
// according to the final "alg": RS256/384/512 and PS256/384/512 with the
// selected RSA key; HS256/384/512 with the selected key's PUBLIC key in PEM
// form as the HMAC secret (the key-confusion attack); "none" with an empty
// signature. Claims are marshalled with encoding/json.
func (i *Issuer) Mint(k Key, header Header, claims Claims) (string, error) {
	key, err := i.key(k)
	if err != nil {
		return "", err
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("devissuer: marshal claims: %w", err)
	}
	return i.sign(key, header, cb)
}

// MintPayload is Mint with the payload given as raw bytes, signed exactly
// as given: for claims encoding/json cannot produce, such as invalid UTF-8
// or a claim given twice.
func (i *Issuer) MintPayload(k Key, header Header, payload []byte) (string, error) {
	key, err := i.key(k)
	if err != nil {
		return "", err
	}
	return i.sign(key, header, payload)
}

func (i *Issuer) sign(key *signingKey, header Header, payload []byte) (string, error) {
	h := Header{"alg": "RS256", "kid": key.id, "typ": TypeAccessToken}
	for name, v := range header {
		if v == nil {
			delete(h, name)
			continue
		}
		h[name] = v
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("devissuer: marshal header: %w", err)
	}
	input := b64(hb) + "." + b64(payload)
	alg, _ := h["alg"].(string)
	sig, err := sign(alg, key.priv, input)
	if err != nil {
		return "", err
	}
	return input + "." + b64(sig), nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func sign(alg string, priv *rsa.PrivateKey, input string) ([]byte, error) {
	if alg == "none" {
		return nil, nil
	}
	h, ok := map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}[alg[min(2, len(alg)):]]
	if len(alg) != 5 || !ok {
		return nil, fmt.Errorf("devissuer: cannot sign with alg %q", alg)
	}
	switch alg[:2] {
	case "RS":
		return rsa.SignPKCS1v15(rand.Reader, priv, h, digest(h, input))
	case "PS":
		return rsa.SignPSS(rand.Reader, priv, h, digest(h, input), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "HS":
		der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("devissuer: marshal public key: %w", err)
		}
		secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		newHash := map[crypto.Hash]func() hash.Hash{crypto.SHA256: sha256.New, crypto.SHA384: sha512.New384, crypto.SHA512: sha512.New}[h]
		mac := hmac.New(newHash, secret)
		mac.Write([]byte(input))
		return mac.Sum(nil), nil
	}
	return nil, fmt.Errorf("devissuer: cannot sign with alg %q", alg)
}

func digest(h crypto.Hash, input string) []byte {
	d := h.New()
	d.Write([]byte(input))
	return d.Sum(nil)
}
