package devissuer_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
)

var fixedNow = time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)

func testConfig() devissuer.Config {
	return devissuer.Config{
		Users: map[string]devissuer.User{
			"alice": {Password: "alice-pw", Email: "alice@example.com"},
			"root":  {Password: "root-pw", Roles: []string{"admin"}},
		},
		Clients: map[string]devissuer.Client{
			"productsvc": {Secret: "s3cr:t/+%", Scopes: []string{"events:write", "events:read"}},
		},
		Now: func() time.Time { return fixedNow },
	}
}

// tokenResult is a token-endpoint response, success or RFC 6749 error.
type tokenResult struct {
	status      int
	wwwAuth     string
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	Error       string `json:"error"`
}

func postToken(t *testing.T, iss *devissuer.Issuer, form url.Values, basicUser, basicPass string) tokenResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, iss.URL()+devissuer.TokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	res := tokenResult{status: resp.StatusCode, wwwAuth: resp.Header.Get("WWW-Authenticate")}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatalf("token response is not JSON: %v", err)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("token response Cache-Control = %q, want no-store", got)
	}
	return res
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func fetchJWKS(t *testing.T, iss *devissuer.Issuer) jose.JSONWebKeySet {
	t.Helper()
	var set jose.JSONWebKeySet
	getJSON(t, iss.URL()+devissuer.JWKSPath, &set)
	return set
}

// verified checks tok's RS256 signature against the published JWKS and
// returns its JOSE header and claims.
func verified(t *testing.T, iss *devissuer.Issuer, tok string) (jose.Header, map[string]any) {
	t.Helper()
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	h := jws.Signatures[0].Header
	set := fetchJWKS(t, iss)
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d published keys, want 1", h.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("signature does not verify with the published key: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return h, claims
}

func TestStartRefusesNonLoopbackAddresses(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0", "192.0.2.1:0", "example.com:0", "nonsense"} {
		if iss, err := devissuer.Start(devissuer.Config{}, addr); err == nil {
			iss.Close()
			t.Errorf("Start(%q) succeeded, want refusal", addr)
		}
	}
}

// fakeListener reports a non-loopback address and never accepts.
type fakeListener struct{ net.Listener }

func (fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 8080} }
func (fakeListener) Close() error   { return nil }

func TestServeRefusesNonLoopbackListener(t *testing.T) {
	t.Parallel()
	iss, err := devissuer.New(devissuer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := iss.Serve(fakeListener{}); err == nil || !strings.Contains(err.Error(), "non-loopback") {
		t.Fatalf("Serve(non-loopback) = %v, want a refusal", err)
	}
	if iss.URL() != "" {
		t.Fatalf("URL() = %q after a refused Serve, want empty", iss.URL())
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	bad := map[string]devissuer.Config{
		"user without password": {Users: map[string]devissuer.User{"bob": {}}},
		"client without secret": {Clients: map[string]devissuer.Client{"svc": {}}},
		"reserved client id":    {Clients: map[string]devissuer.Client{devissuer.WebClientID: {Secret: "x"}}},
		"negative ttl":          {TokenTTL: -time.Second},
	}
	for name, cfg := range bad {
		if _, err := devissuer.New(cfg); err == nil {
			t.Errorf("%s: New succeeded, want an error", name)
		}
	}
}

func TestDiscoveryAndJWKS(t *testing.T) {
	t.Parallel()
	iss := issuertest.New(t, testConfig())
	if !strings.HasPrefix(iss.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL() = %q, want http://127.0.0.1:<port>", iss.URL())
	}

	var doc map[string]any
	getJSON(t, iss.URL()+devissuer.DiscoveryPath, &doc)
	want := map[string]string{
		"issuer":                 iss.URL(),
		"jwks_uri":               iss.URL() + "/jwks",
		"token_endpoint":         iss.URL() + "/token",
		"authorization_endpoint": iss.URL() + "/authorize",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("discovery %s = %v, want %q", k, doc[k], v)
		}
	}
	if algs, _ := doc["id_token_signing_alg_values_supported"].([]any); !slices.Equal(algs, []any{"RS256"}) {
		t.Errorf("id_token_signing_alg_values_supported = %v, want [RS256]", algs)
	}
	if grants, _ := doc["grant_types_supported"].([]any); !slices.Contains(grants, any("client_credentials")) || !slices.Contains(grants, any("password")) || !slices.Contains(grants, any("authorization_code")) {
		t.Errorf("grant_types_supported = %v, want authorization_code, password and client_credentials", grants)
	}
	if methods, _ := doc["code_challenge_methods_supported"].([]any); !slices.Equal(methods, []any{"S256"}) {
		t.Errorf("code_challenge_methods_supported = %v, want [S256]", methods)
	}

	set := fetchJWKS(t, iss)
	cur, _ := iss.KeyID(devissuer.KeyCurrent)
	next, _ := iss.KeyID(devissuer.KeyNext)
	if got := kids(set); !slices.Equal(got, []string{cur, next}) {
		t.Fatalf("JWKS kids = %v, want current and next %v", got, []string{cur, next})
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || k.Use != "sig" || k.Algorithm != "RS256" {
			t.Errorf("JWKS key %s: public=%v use=%q alg=%q, want public sig RS256", k.KeyID, k.IsPublic(), k.Use, k.Algorithm)
		}
	}
}

func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

func TestPasswordGrantIssuesUserAccessToken(t *testing.T) {
	t.Parallel()
	iss := issuertest.New(t, testConfig())

	res := postToken(t, iss, url.Values{"grant_type": {"password"}, "username": {"root"}, "password": {"root-pw"}, "client_id": {"shop-web"}}, "", "")
	if res.status != http.StatusOK || res.TokenType != "Bearer" || res.ExpiresIn != 900 {
		t.Fatalf("password grant: %+v, want 200 Bearer expires_in 900", res)
	}
	h, c := verified(t, iss, res.AccessToken)
	if h.ExtraHeaders[jose.HeaderType] != "at+jwt" || h.Algorithm != "RS256" {
		t.Errorf("header typ=%v alg=%s, want at+jwt RS256", h.ExtraHeaders[jose.HeaderType], h.Algorithm)
	}
	if cur, _ := iss.KeyID(devissuer.KeyCurrent); h.KeyID != cur {
		t.Errorf("kid = %s, want the current key %s", h.KeyID, cur)
	}
	wantClaims := map[string]any{
		"iss":       iss.URL(),
		"sub":       devissuer.Subject("root"),
		"aud":       "shop-api",
		"client_id": "shop-web",
		"scope":     devissuer.UserScope,
		"iat":       float64(fixedNow.Unix()),
		"nbf":       float64(fixedNow.Unix()),
		"exp":       float64(fixedNow.Add(15 * time.Minute).Unix()),
	}
	for k, v := range wantClaims {
		if c[k] != v {
			t.Errorf("claim %s = %v, want %v", k, c[k], v)
		}
	}
	if roles, _ := c["roles"].([]any); !slices.Equal(roles, []any{"admin"}) {
		t.Errorf("roles = %v, want [admin]", c["roles"])
	}
	if jti, _ := c["jti"].(string); jti == "" {
		t.Error("jti is empty")
	}

	// A user without roles still gets an (empty) roles array.
	res = postToken(t, iss, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-pw"}}, "", "")
	if res.status != http.StatusOK {
		t.Fatalf("alice password grant: %+v", res)
	}
	if _, c := verified(t, iss, res.AccessToken); c["email"] != "alice@example.com" || c["roles"] == nil {
		t.Errorf("alice claims email=%v roles=%v, want her email and an empty roles array", c["email"], c["roles"])
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	iss := issuertest.New(t, testConfig())
	cases := []struct {
		name       string
		form       url.Values
		basicUser  string
		basicPass  string
		wantStatus int
		wantError  string
	}{
		{"wrong password", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"nope"}}, "", "", 400, "invalid_grant"},
		{"unknown user", url.Values{"grant_type": {"password"}, "username": {"mallory"}, "password": {"alice-pw"}}, "", "", 400, "invalid_grant"},
		{"password grant missing password", url.Values{"grant_type": {"password"}, "username": {"alice"}}, "", "", 400, "invalid_request"},
		{"password grant other client", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-pw"}, "client_id": {"productsvc"}}, "", "", 401, "invalid_client"},
		{"missing grant_type", url.Values{"username": {"alice"}}, "", "", 400, "invalid_request"},
		{"repeated grant_type", url.Values{"grant_type": {"password", "password"}}, "", "", 400, "invalid_request"},
		{"unknown grant type", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, "", "", 400, "unsupported_grant_type"},
		{"authorization_code without verifier", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {"http://127.0.0.1:1/"}, "client_id": {"shop-web"}}, "", "", 400, "invalid_request"},
		{"authorization_code without client_id", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {"http://127.0.0.1:1/"}, "code_verifier": {strings.Repeat("v", 43)}}, "", "", 401, "invalid_client"},
		{"authorization_code by a confidential client", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {"http://127.0.0.1:1/"}, "code_verifier": {strings.Repeat("v", 43)}}, "productsvc", "s3cr:t/+%", 401, "invalid_client"},
		{"wrong client secret (basic)", url.Values{"grant_type": {"client_credentials"}}, "productsvc", "wrong", 401, "invalid_client"},
		{"wrong client secret (form)", url.Values{"grant_type": {"client_credentials"}, "client_id": {"productsvc"}, "client_secret": {"wrong"}}, "", "", 401, "invalid_client"},
		{"unknown client", url.Values{"grant_type": {"client_credentials"}}, "ghost", "s3cr:t/+%", 401, "invalid_client"},
		{"no client authentication", url.Values{"grant_type": {"client_credentials"}}, "", "", 401, "invalid_client"},
		{"public client cannot use client_credentials", url.Values{"grant_type": {"client_credentials"}, "client_id": {"shop-web"}}, "", "", 401, "invalid_client"},
		{"two client authentication methods", url.Values{"grant_type": {"client_credentials"}, "client_secret": {"s3cr:t/+%"}}, "productsvc", "s3cr:t/+%", 400, "invalid_request"},
		{"scope not granted to client", url.Values{"grant_type": {"client_credentials"}, "scope": {"events:write admin"}}, "productsvc", "s3cr:t/+%", 400, "invalid_scope"},
	}
	for _, tc := range cases {
		res := postToken(t, iss, tc.form, tc.basicUser, tc.basicPass)
		if res.status != tc.wantStatus || res.Error != tc.wantError || res.AccessToken != "" {
			t.Errorf("%s: status %d error %q token %t, want %d %q and no token", tc.name, res.status, res.Error, res.AccessToken != "", tc.wantStatus, tc.wantError)
		}
		if tc.wantStatus == http.StatusUnauthorized && !strings.HasPrefix(res.wwwAuth, "Basic") {
			t.Errorf("%s: 401 without a Basic WWW-Authenticate challenge (got %q)", tc.name, res.wwwAuth)
		}
	}

	resp, err := http.Get(iss.URL() + devissuer.TokenPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /token status %d, want 405", resp.StatusCode)
	}
}

func TestClientCredentialsGrantIssuesServiceToken(t *testing.T) {
	t.Parallel()
	iss := issuertest.New(t, testConfig())

	// HTTP Basic, with a secret that needs form-encoding; all scopes.
	res := postToken(t, iss, url.Values{"grant_type": {"client_credentials"}}, "productsvc", "s3cr:t/+%")
	if res.status != http.StatusOK {
		t.Fatalf("client credentials (basic): %+v, want 200", res)
	}
	_, c := verified(t, iss, res.AccessToken)
	if c["sub"] != "productsvc" || c["client_id"] != "productsvc" || c["scope"] != "events:write events:read" || c["aud"] != "shop-api" {
		t.Errorf("service claims sub=%v client_id=%v scope=%v aud=%v, want sub == client_id == productsvc, both scopes, shop-api", c["sub"], c["client_id"], c["scope"], c["aud"])
	}
	if _, ok := c["roles"]; ok {
		t.Errorf("service token has roles %v, want none", c["roles"])
	}

	// Form credentials, one requested scope.
	res = postToken(t, iss, url.Values{"grant_type": {"client_credentials"}, "client_id": {"productsvc"}, "client_secret": {"s3cr:t/+%"}, "scope": {"events:write"}}, "", "")
	if res.status != http.StatusOK || res.Scope != "events:write" {
		t.Fatalf("client credentials (form): %+v, want 200 with scope events:write", res)
	}
	if _, c := verified(t, iss, res.AccessToken); c["scope"] != "events:write" {
		t.Errorf("scope claim %v, want events:write", c["scope"])
	}
}

func TestRotateKeysPublishesNextAndRetiresCurrent(t *testing.T) {
	t.Parallel()
	iss := issuertest.New(t, testConfig())
	oldCur, _ := iss.KeyID(devissuer.KeyCurrent)
	oldNext, _ := iss.KeyID(devissuer.KeyNext)
	before, err := iss.UserToken("alice")
	if err != nil {
		t.Fatal(err)
	}

	if err := iss.RotateKeys(); err != nil {
		t.Fatal(err)
	}
	cur, _ := iss.KeyID(devissuer.KeyCurrent)
	next, _ := iss.KeyID(devissuer.KeyNext)
	if cur != oldNext || next == oldNext || next == oldCur {
		t.Fatalf("after rotation current=%s next=%s, want current=%s (old next) and a fresh next", cur, next, oldNext)
	}
	if got := kids(fetchJWKS(t, iss)); !slices.Equal(got, []string{cur, next, oldCur}) {
		t.Fatalf("JWKS after rotation = %v, want current, next, retired %v", got, []string{cur, next, oldCur})
	}
	verified(t, iss, before) // the retired key still verifies its tokens
	after, err := iss.UserToken("alice")
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := verified(t, iss, after); h.KeyID != cur {
		t.Fatalf("new token kid %s, want the new current key %s", h.KeyID, cur)
	}

	iss.RemoveOldKeys()
	if got := kids(fetchJWKS(t, iss)); !slices.Equal(got, []string{cur, next}) {
		t.Fatalf("JWKS after RemoveOldKeys = %v, want %v", got, []string{cur, next})
	}
}

func TestSubjectIsStablePerUsername(t *testing.T) {
	t.Parallel()
	// The literal pins the derivation: changing it would orphan dev carts.
	if got := devissuer.Subject("alice"); got != devissuer.Subject("alice") || got != "ca6095b7-0cbd-5f40-973b-896243c0d1a0" {
		t.Errorf("Subject(alice) = %s, want the pinned stable value", got)
	}
	if devissuer.Subject("alice") == devissuer.Subject("bob") {
		t.Error("alice and bob share a subject")
	}
}

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
		tok := issuertest.Bad(t, iss, kind, base)
		header, claims := decode(t, tok)
		check := func(ok bool, what string) {
			if !ok {
				t.Errorf("%s: %s (header %v, claims %v)", kind, what, header, claims)
			}
		}
		switch kind {
		case devissuer.BadExpired:
			check(claims["exp"].(float64) < float64(fixedNow.Unix()), "exp not in the past")
		case devissuer.BadNotYetValid:
			check(claims["nbf"].(float64) > float64(fixedNow.Unix()), "nbf not in the future")
		case devissuer.BadWrongAudience:
			check(claims["aud"] != "shop-api", "aud is the API")
		case devissuer.BadWrongIssuer:
			check(claims["iss"] != iss.URL(), "iss is this issuer")
		case devissuer.BadAlgNone:
			check(header["alg"] == "none" && strings.HasSuffix(tok, "."), "not alg none with empty signature")
		case devissuer.BadKeyConfusion:
			check(header["alg"] == "HS256" && header["kid"] == cur, "not HS256 with the current kid")
		case devissuer.BadUnknownKID:
			check(header["kid"] == unpub && !slices.Contains(kids(fetchJWKS(t, iss)), unpub), "kid published or wrong")
		case devissuer.BadIDToken:
			check(header["typ"] == "JWT" && claims["aud"] == "shop-web" && claims["nonce"] != nil && claims["at_hash"] != nil, "not an ID token")
		case devissuer.BadIDTokenForAPI:
			check(header["typ"] == "JWT" && claims["aud"] == "shop-api" && claims["nonce"] != nil, "not an ID token for the API")
		case devissuer.BadLogoutToken:
			check(header["typ"] == "logout+jwt" && claims["events"] != nil, "not a logout token")
		case devissuer.BadLogoutTokenForAPI:
			check(header["typ"] == "JWT" && claims["aud"] == "shop-api" && claims["events"] != nil, "not a logout token for the API")
		case devissuer.BadTampered:
			jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
			check(err == nil, "does not parse")
			if err == nil {
				set := fetchJWKS(t, iss)
				_, err = jws.Verify(set.Key(cur)[0])
			}
			check(err != nil && slices.Equal(claims["roles"].([]any), []any{"admin"}), "signature still valid or payload unchanged")
		case devissuer.BadMissingType:
			_, has := header["typ"]
			check(!has, "has typ")
		case devissuer.BadNoExpiry:
			_, has := claims["exp"]
			check(!has, "has exp")
		case devissuer.BadNoSubject:
			_, has := claims["sub"]
			check(!has, "has sub")
		case devissuer.BadSubjectNUL:
			check(strings.Contains(claims["sub"].(string), "\x00"), "no NUL in sub")
		case devissuer.BadSubjectControl:
			check(strings.Contains(claims["sub"].(string), "\x1b"), "no control character in sub")
		case devissuer.BadSubjectInvalidUTF8:
			payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
			check(!utf8.Valid(payload) && bytes.Contains(payload, []byte("alice\xff")), "payload is valid UTF-8")
		case devissuer.BadSubjectEmpty:
			sub, has := claims["sub"]
			check(has && sub == "", "sub not empty")
		case devissuer.BadSubjectTooLong:
			check(len(claims["sub"].(string)) > 255, "sub not longer than 255 bytes")
		case devissuer.BadClientIDControl:
			check(strings.Contains(claims["client_id"].(string), "\x00"), "no NUL in client_id")
		case devissuer.BadExpiryString:
			_, isString := claims["exp"].(string)
			check(isString, "exp not a string")
		case devissuer.BadIssuedAtString:
			_, isString := claims["iat"].(string)
			check(isString, "iat not a string")
		case devissuer.BadNoIssuedAt:
			_, has := claims["iat"]
			check(!has, "has iat")
		case devissuer.BadIssuedInFuture:
			check(claims["iat"].(float64) >= float64(fixedNow.Add(time.Hour).Unix()) && claims["nbf"].(float64) <= float64(fixedNow.Unix()), "iat not an hour ahead, or nbf ahead too")
		default:
			t.Errorf("kind %s has no check here", kind)
		}
	}
	if base["roles"] == nil || len(base["roles"].([]string)) != 0 || base["aud"] != "shop-api" {
		t.Errorf("MintBad modified its base claims: %v", base)
	}
}

func decode(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}
