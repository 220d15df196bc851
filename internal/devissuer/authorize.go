package devissuer

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// authRequest is a validated authorization request (RFC 6749 section 4.1.1
// with the RFC 7636 S256 code challenge).
type authRequest struct {
	ClientID      string
	RedirectURI   string
	State         string
	CodeChallenge string
	Scope         string
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
