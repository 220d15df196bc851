package devissuer

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/cors"
)

// Paths served by Handler, relative to the issuer URL.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/jwks"
	TokenPath     = "/token"
	AuthorizePath = "/authorize"
)

const maxFormBytes = 64 << 10

// Start creates an issuer and serves it in the background on addr, which
// must name a loopback host ("127.0.0.1:0", "[::1]:0", "localhost:0");
// any other address, including ":0", is refused. The issuer URL is then
// "http://127.0.0.1:<port>". Stop it with Close.
func Start(cfg Config, addr string) (*Issuer, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("devissuer: address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("devissuer: refusing non-loopback address %q (development only)", addr)
	}
	iss, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devissuer: listen: %w", err)
	}
	srv, err := iss.bind(ln)
	if err != nil {
		ln.Close()
		return nil, err
	}
	go func() { _ = srv.Serve(ln) }() // returns ErrServerClosed after Close
	return iss, nil
}

// Serve serves the issuer on ln until Close and returns nil then. It refuses
// a listener whose address is not loopback, and a second call.
func (i *Issuer) Serve(ln net.Listener) error {
	srv, err := i.bind(ln)
	if err != nil {
		return err
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// bind fixes the issuer URL from the (loopback) listener and creates the
// server, so the URL is known before the first request.
func (i *Issuer) bind(ln net.Listener) (*http.Server, error) {
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !addr.IP.IsLoopback() {
		return nil, fmt.Errorf("devissuer: refusing non-loopback listener %s (development only)", ln.Addr())
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.srv != nil {
		return nil, errors.New("devissuer: already serving")
	}
	i.url = "http://" + net.JoinHostPort(addr.IP.String(), fmt.Sprint(addr.Port))
	i.srv = &http.Server{
		Handler:           i.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	i.logger.Warn("devissuer: development-only OIDC issuer started; never use it in production",
		"issuer", i.url, "audience", i.audience)
	return i.srv, nil
}

// Close stops serving and closes open connections. It is safe to call
// before serving and more than once.
func (i *Issuer) Close() error {
	i.mu.Lock()
	srv := i.srv
	i.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// Handler serves, relative to URL(): DiscoveryPath, JWKSPath and TokenPath,
// which answer cross-origin requests from any loopback origin (CORS, no
// credentials) so a web page on localhost can use them, and AuthorizePath:
// GET shows a login form for an authorization-code request with PKCE
// (S256) from WebClientID to a loopback redirect_uri, and POST checks the
// credentials and redirects there with a single-use code. Start and Serve
// mount it; it answers with the issuer URL they fixed.
func (i *Issuer) Handler() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET "+DiscoveryPath, i.handleDiscovery)
	api.HandleFunc("GET "+JWKSPath, i.handleJWKS)
	api.HandleFunc("POST "+TokenPath, i.handleToken)
	withCORS := cors.New(cors.Options{
		AllowOriginFunc: isLoopbackOrigin,
		AllowedMethods:  []string{http.MethodGet, http.MethodPost},
		AllowedHeaders:  []string{"Content-Type"},
		MaxAge:          corsMaxAge,
	}).Handler(api)

	mux := http.NewServeMux()
	mux.Handle(DiscoveryPath, withCORS)
	mux.Handle(JWKSPath, withCORS)
	mux.Handle(TokenPath, withCORS)
	mux.HandleFunc("GET "+AuthorizePath, i.handleAuthorize)
	mux.HandleFunc("POST "+AuthorizePath, i.handleLogin)
	return mux
}

// corsMaxAge is how long browsers may cache a preflight answer, in seconds.
const corsMaxAge = 2 * 60 * 60

func (i *Issuer) handleDiscovery(w http.ResponseWriter, _ *http.Request) {
	base := i.URL()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                         base,
		"authorization_endpoint":                         base + AuthorizePath,
		"token_endpoint":                                 base + TokenPath,
		"jwks_uri":                                       base + JWKSPath,
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"code_challenge_methods_supported":               []string{"S256"},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          []string{"RS256"},
		"grant_types_supported":                          []string{"authorization_code", "password", "client_credentials"},
		"token_endpoint_auth_methods_supported":          []string{"client_secret_basic", "client_secret_post", "none"},
		"scopes_supported":                               []string{"openid", "profile", "email"},
		"authorization_response_iss_parameter_supported": true,
	})
}

func (i *Issuer) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	if i.jwksAge > 0 {
		w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", int(i.jwksAge.Seconds())))
	}
	writeJSON(w, http.StatusOK, i.JWKS())
}

// tokenError is an RFC 6749 section 5.2 error response.
type tokenError struct {
	status      int
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (i *Issuer) handleToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeTokenError(w, tokenError{status: http.StatusBadRequest, Code: "invalid_request", Description: "malformed form body"})
		return
	}
	grant, terr := formValue(r.PostForm, "grant_type")
	if terr == nil && grant == "" {
		terr = &tokenError{status: http.StatusBadRequest, Code: "invalid_request", Description: "grant_type is required"}
	}
	if terr != nil {
		writeTokenError(w, *terr)
		return
	}
	var claims Claims
	switch grant {
	case "password":
		claims, terr = i.passwordGrant(r)
	case "client_credentials":
		claims, terr = i.clientCredentialsGrant(r)
	case "authorization_code":
		claims, terr = i.authorizationCodeGrant(r)
	default:
		terr = &tokenError{status: http.StatusBadRequest, Code: "unsupported_grant_type"}
	}
	if terr != nil {
		if terr.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="devissuer"`)
		}
		writeTokenError(w, *terr)
		return
	}
	tok, err := i.Mint(KeyCurrent, nil, claims)
	if err != nil {
		writeTokenError(w, tokenError{status: http.StatusInternalServerError, Code: "server_error"})
		return
	}
	scope, _ := claims["scope"].(string)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int64(i.ttl / time.Second),
		"scope":        scope,
	})
}

// passwordGrant serves the public web client: a client_id other than
// WebClientID, or any client secret, is invalid_client; a wrong username or
// password is invalid_grant.
func (i *Issuer) passwordGrant(r *http.Request) (Claims, *tokenError) {
	clientID, secret, err := clientCredentials(r)
	if err != nil {
		return nil, err
	}
	if secret != "" || (clientID != "" && clientID != WebClientID) {
		return nil, &tokenError{status: http.StatusUnauthorized, Code: "invalid_client"}
	}
	username, err := formValue(r.PostForm, "username")
	if err != nil {
		return nil, err
	}
	password, err := formValue(r.PostForm, "password")
	if err != nil {
		return nil, err
	}
	if username == "" || password == "" {
		return nil, &tokenError{status: http.StatusBadRequest, Code: "invalid_request", Description: "username and password are required"}
	}
	u, ok := i.users[username]
	if !ok || subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) != 1 {
		return nil, &tokenError{status: http.StatusBadRequest, Code: "invalid_grant", Description: "wrong username or password"}
	}
	claims, cerr := i.UserClaims(username)
	if cerr != nil {
		return nil, &tokenError{status: http.StatusInternalServerError, Code: "server_error"}
	}
	return claims, nil
}

// clientCredentialsGrant authenticates a confidential client (HTTP Basic or
// form) and issues it a service token for the requested scopes (all of its
// scopes when none are requested).
func (i *Issuer) clientCredentialsGrant(r *http.Request) (Claims, *tokenError) {
	clientID, secret, err := clientCredentials(r)
	if err != nil {
		return nil, err
	}
	cl, ok := i.clients[clientID]
	if clientID == "" || !ok || subtle.ConstantTimeCompare([]byte(cl.Secret), []byte(secret)) != 1 {
		return nil, &tokenError{status: http.StatusUnauthorized, Code: "invalid_client", Description: "client authentication failed"}
	}
	scope, err := formValue(r.PostForm, "scope")
	if err != nil {
		return nil, err
	}
	claims, cerr := i.ServiceClaims(clientID, strings.Fields(scope)...)
	if cerr != nil {
		return nil, &tokenError{status: http.StatusBadRequest, Code: "invalid_scope"}
	}
	return claims, nil
}

// clientCredentials returns the client's id and secret from HTTP Basic
// (form-urlencoded per RFC 6749 section 2.3.1) or from the form; using both
// is invalid_request.
func clientCredentials(r *http.Request) (id, secret string, terr *tokenError) {
	formID, terr := formValue(r.PostForm, "client_id")
	if terr != nil {
		return "", "", terr
	}
	formSecret, terr := formValue(r.PostForm, "client_secret")
	if terr != nil {
		return "", "", terr
	}
	basicID, basicSecret, basic := r.BasicAuth()
	if !basic {
		if r.Header.Get("Authorization") != "" {
			return "", "", &tokenError{status: http.StatusUnauthorized, Code: "invalid_client", Description: "unsupported client authentication"}
		}
		return formID, formSecret, nil
	}
	if formSecret != "" {
		return "", "", &tokenError{status: http.StatusBadRequest, Code: "invalid_request", Description: "use one client authentication method"}
	}
	id, err1 := url.QueryUnescape(basicID)
	secret, err2 := url.QueryUnescape(basicSecret)
	if err1 != nil || err2 != nil || (formID != "" && formID != id) {
		return "", "", &tokenError{status: http.StatusUnauthorized, Code: "invalid_client"}
	}
	return id, secret, nil
}

// formValue returns a parameter that may appear at most once.
func formValue(form url.Values, name string) (string, *tokenError) {
	vs := form[name]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", &tokenError{status: http.StatusBadRequest, Code: "invalid_request", Description: name + " is repeated"}
}

func writeTokenError(w http.ResponseWriter, e tokenError) {
	writeJSON(w, e.status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
