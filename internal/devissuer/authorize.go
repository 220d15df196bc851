package devissuer

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// AuthCodeTTL is how long an authorization code can be exchanged at the
// token endpoint.
const AuthCodeTTL = 60 * time.Second

// maxPendingCodes bounds the codes kept in memory; past it the oldest
// pending code is dropped.
const maxPendingCodes = 1024

// authRequest is a validated authorization request (RFC 6749 section 4.1.1
// with the RFC 7636 S256 code challenge).
type authRequest struct {
	ClientID      string
	RedirectURI   string
	State         string
	CodeChallenge string
	Scope         string
}

// authCode is an issued, not yet exchanged, authorization code.
type authCode struct {
	clientID      string
	redirectURI   string
	codeChallenge string
	username      string
	expires       time.Time
}

// authError is what is wrong with an authorization request. With redirect
// set, it goes back to the client's redirect_uri as an error response;
// otherwise (unknown client, unacceptable redirect_uri) it is shown to the
// user, since redirecting would be an open redirect.
type authError struct {
	redirect    bool
	code        string
	description string
}

// parseAuthRequest validates an authorization request's parameters, from
// the query (GET) or the login form (POST).
func parseAuthRequest(params url.Values) (authRequest, *authError) {
	var req authRequest
	single := func(name string) (string, bool) {
		vs := params[name]
		if len(vs) > 1 {
			return "", false
		}
		if len(vs) == 0 {
			return "", true
		}
		return vs[0], true
	}
	clientID, ok1 := single("client_id")
	redirectURI, ok2 := single("redirect_uri")
	if !ok1 || !ok2 {
		return req, &authError{code: "invalid_request", description: "client_id and redirect_uri may appear only once"}
	}
	if clientID != WebClientID {
		return req, &authError{code: "unauthorized_client", description: "unknown client_id: only " + WebClientID + " may use this flow"}
	}
	if !isLoopbackRedirect(redirectURI) {
		return req, &authError{code: "invalid_request", description: "redirect_uri must be an http URL on a loopback host (127.0.0.1, [::1] or localhost), without user info or fragment"}
	}
	req.ClientID, req.RedirectURI = clientID, redirectURI

	// From here on errors go back to the (safe) redirect_uri.
	var ok bool
	if req.State, ok = single("state"); !ok {
		return req, &authError{redirect: true, code: "invalid_request", description: "state is repeated"}
	}
	responseType, ok3 := single("response_type")
	method, ok4 := single("code_challenge_method")
	challenge, ok5 := single("code_challenge")
	scope, ok6 := single("scope")
	switch {
	case !ok3 || !ok4 || !ok5 || !ok6:
		return req, &authError{redirect: true, code: "invalid_request", description: "a parameter is repeated"}
	case responseType != "code":
		return req, &authError{redirect: true, code: "unsupported_response_type", description: "response_type must be code"}
	case method != "S256":
		return req, &authError{redirect: true, code: "invalid_request", description: "code_challenge_method must be S256 (PKCE is required)"}
	case !isS256Challenge(challenge):
		return req, &authError{redirect: true, code: "invalid_request", description: "code_challenge must be a base64url SHA-256 (43 characters)"}
	}
	req.CodeChallenge, req.Scope = challenge, scope
	return req, nil
}

// isLoopbackRedirect accepts http URLs on a loopback host, any port and
// path, with no user info and no fragment (RFC 8252 section 7.3).
func isLoopbackRedirect(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Fragment != "" || strings.Contains(raw, "#") || u.Opaque != "" {
		return false
	}
	return isLoopbackHost(u.Hostname())
}

// isLoopbackOrigin accepts a browser origin (scheme://host[:port]) whose
// host is loopback.
func isLoopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	return isLoopbackHost(u.Hostname())
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isS256Challenge(s string) bool {
	if len(s) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == sha256.Size
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

// handleAuthorize shows the login form for a valid request; errors go to
// the redirect_uri when it is known to be safe, else to the user.
func (i *Issuer) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	req, aerr := parseAuthRequest(r.URL.Query())
	if aerr != nil {
		i.authFail(w, r, req, aerr)
		return
	}
	i.renderLogin(w, http.StatusOK, req, "", "")
}

// handleLogin authenticates the user from the login form and redirects to
// the client with a fresh code; a wrong password shows the form again.
func (i *Issuer) handleLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		i.renderError(w, http.StatusBadRequest, "malformed form body")
		return
	}
	req, aerr := parseAuthRequest(r.PostForm)
	if aerr != nil {
		i.authFail(w, r, req, aerr)
		return
	}
	if r.PostForm.Get("cancel") != "" {
		redirectWith(w, r, req, url.Values{"error": {"access_denied"}, "error_description": {"the user cancelled the login"}}, i.URL())
		return
	}
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	u, ok := i.users[username]
	if username == "" || !ok || subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) != 1 {
		i.renderLogin(w, http.StatusUnauthorized, req, username, "Wrong username or password.")
		return
	}
	code, err := i.newCode(req, username)
	if err != nil {
		i.renderError(w, http.StatusInternalServerError, "could not issue a code")
		return
	}
	redirectWith(w, r, req, url.Values{"code": {code}}, i.URL())
}

func (i *Issuer) authFail(w http.ResponseWriter, r *http.Request, req authRequest, aerr *authError) {
	if !aerr.redirect {
		i.renderError(w, http.StatusBadRequest, aerr.code+": "+aerr.description)
		return
	}
	redirectWith(w, r, req, url.Values{"error": {aerr.code}, "error_description": {aerr.description}}, i.URL())
}

// redirectWith sends the browser to the request's redirect_uri with params,
// state and iss (RFC 9207) added to its query.
func redirectWith(w http.ResponseWriter, r *http.Request, req authRequest, params url.Values, iss string) {
	u, err := url.Parse(req.RedirectURI)
	if err != nil { // validated before; cannot happen
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	if req.State != "" {
		q.Set("state", req.State)
	}
	q.Set("iss", iss)
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), http.StatusFound)
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

// loginPage is the data of the login form.
type loginPage struct {
	Req      authRequest
	Username string
	Error    string
	Users    []demoUser
}

type demoUser struct {
	Name         string
	Roles        string
	PasswordHint bool // the password is the username (demo identities)
}

func (i *Issuer) renderLogin(w http.ResponseWriter, status int, req authRequest, username, msg string) {
	page := loginPage{Req: req, Username: username, Error: msg}
	for _, name := range slices.Sorted(maps.Keys(i.users)) {
		u := i.users[name]
		page.Users = append(page.Users, demoUser{Name: name, Roles: strings.Join(u.Roles, ", "), PasswordHint: u.Password == name})
	}
	writeHTML(w, status, "login", page)
}

func (i *Issuer) renderError(w http.ResponseWriter, status int, msg string) {
	writeHTML(w, status, "error", msg)
}

func writeHTML(w http.ResponseWriter, status int, name string, data any) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// No form-action: the login form's redirect goes to the client's origin.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	_ = pages.ExecuteTemplate(w, name, data)
}

// pages are the issuer's HTML pages; html/template escapes every value.
var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · development issuer</title>
<style>
body{font:16px/1.4 system-ui,sans-serif;max-width:26rem;margin:2rem auto;padding:0 1rem;color:#222}
.dev{background:#fff3cd;border:2px solid #c69500;padding:.6rem .8rem;border-radius:6px;font-weight:600}
.err{background:#fde2e1;border:1px solid #c0392b;padding:.5rem .8rem;border-radius:6px}
label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.45rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1.2rem}small{color:#555}
</style></head><body>
<p class="dev" data-testid="dev-issuer-banner">DEVELOPMENT ISSUER: for local development and tests only. Never use it in production.</p>
{{end}}
{{define "login"}}{{template "head"}}
<h1>Sign in</h1>
<p><small>to <b>{{.Req.ClientID}}</b>, returning to <code>{{.Req.RedirectURI}}</code></small></p>
{{with .Error}}<p class="err" role="alert" data-testid="login-error">{{.}}</p>{{end}}
<form method="post" action="authorize">
<input type="hidden" name="response_type" value="code">
<input type="hidden" name="client_id" value="{{.Req.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.Req.RedirectURI}}">
<input type="hidden" name="state" value="{{.Req.State}}">
<input type="hidden" name="code_challenge" value="{{.Req.CodeChallenge}}">
<input type="hidden" name="code_challenge_method" value="S256">
<input type="hidden" name="scope" value="{{.Req.Scope}}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" autofocus required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit" id="login">Sign in</button>
<button type="submit" id="cancel" name="cancel" value="1" formnovalidate>Cancel</button>
</form>
{{with .Users}}<h2>Demo users</h2><ul data-testid="demo-users">
{{range .}}<li><b>{{.Name}}</b>{{if .PasswordHint}} (password: {{.Name}}){{end}}{{with .Roles}}: role {{.}}{{end}}</li>
{{end}}</ul>{{end}}
</body></html>
{{end}}
{{define "error"}}{{template "head"}}
<h1>Cannot sign in</h1>
<p class="err" role="alert" data-testid="authorize-error">{{.}}</p>
</body></html>
{{end}}`))
