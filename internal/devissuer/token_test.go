package devissuer_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	jose "github.com/go-jose/go-jose/v4"
)

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
