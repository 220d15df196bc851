package devissuer

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"time"
)

// AuthCodeTTL is how long an authorization code can be exchanged at the
// token endpoint.
const AuthCodeTTL = 60 * time.Second

// maxPendingCodes bounds the codes kept in memory; past it the oldest
// pending code is dropped.
const maxPendingCodes = 1024

// authCode is an issued, not yet exchanged, authorization code.
type authCode struct {
	clientID      string
	redirectURI   string
	codeChallenge string
	username      string
	expires       time.Time
}

// isCodeVerifier checks RFC 7636 section 4.1: 43 to 128 characters of
// [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
func isCodeVerifier(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// newCode stores a single-use code for req and username.
func (i *Issuer) newCode(req authRequest, username string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	code := base64.RawURLEncoding.EncodeToString(b[:])
	now := i.now()
	i.codesMu.Lock()
	defer i.codesMu.Unlock()
	if i.codes == nil {
		i.codes = make(map[string]authCode)
	}
	var oldest string
	for c, ac := range i.codes {
		if !now.Before(ac.expires) {
			delete(i.codes, c)
			continue
		}
		if oldest == "" || ac.expires.Before(i.codes[oldest].expires) {
			oldest = c
		}
	}
	if len(i.codes) >= maxPendingCodes {
		delete(i.codes, oldest)
	}
	i.codes[code] = authCode{
		clientID:      req.ClientID,
		redirectURI:   req.RedirectURI,
		codeChallenge: req.CodeChallenge,
		username:      username,
		expires:       now.Add(AuthCodeTTL),
	}
	return code, nil
}

// takeCode removes code and returns it if it has not expired. A code is
// gone after its first presentation, whatever the outcome of the exchange.
func (i *Issuer) takeCode(code string) (authCode, bool) {
	i.codesMu.Lock()
	defer i.codesMu.Unlock()
	ac, ok := i.codes[code]
	if !ok {
		return authCode{}, false
	}
	delete(i.codes, code)
	return ac, i.now().Before(ac.expires)
}

// authorizationCodeGrant exchanges a code for a user access token: the
// public client WebClientID (no secret), the same redirect_uri, and the
// PKCE code_verifier whose S256 hash is the code's challenge.
func (i *Issuer) authorizationCodeGrant(r *http.Request) (Claims, *tokenError) {
	clientID, secret, terr := clientCredentials(r)
	if terr != nil {
		return nil, terr
	}
	if secret != "" || clientID != WebClientID {
		return nil, &tokenError{status: http.StatusUnauthorized, Code: "invalid_client", Description: "only the public client " + WebClientID + " may use this grant"}
	}
	var vals [3]string
	for n, name := range []string{"code", "redirect_uri", "code_verifier"} {
		v, terr := formValue(r.PostForm, name)
		if terr != nil {
			return nil, terr
		}
		if v == "" {
			return nil, &tokenError{status: http.StatusBadRequest, Code: "invalid_request", Description: name + " is required"}
		}
		vals[n] = v
	}
	code, redirectURI, verifier := vals[0], vals[1], vals[2]
	ac, ok := i.takeCode(code)
	if !ok || ac.clientID != clientID || ac.redirectURI != redirectURI {
		return nil, &tokenError{status: http.StatusBadRequest, Code: "invalid_grant", Description: "the code is unknown, used, expired, or was issued for another client or redirect_uri"}
	}
	sum := sha256.Sum256([]byte(verifier))
	if !isCodeVerifier(verifier) || subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(ac.codeChallenge)) != 1 {
		return nil, &tokenError{status: http.StatusBadRequest, Code: "invalid_grant", Description: "code_verifier does not match the code_challenge"}
	}
	claims, err := i.UserClaims(ac.username)
	if err != nil {
		return nil, &tokenError{status: http.StatusInternalServerError, Code: "server_error"}
	}
	return claims, nil
}
