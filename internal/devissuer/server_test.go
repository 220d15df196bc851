package devissuer_test

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
)

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

func (fakeListener) Close() error { return nil }

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

func TestIssuerAPIAllowsLoopbackOrigins(t *testing.T) {
	t.Parallel()
	b := setupCode(t)
	do := func(method, path, origin string, header http.Header) page {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, b.iss.URL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("Origin", origin)
		return b.do(t, req)
	}
	for _, path := range []string{devissuer.DiscoveryPath, devissuer.JWKSPath} {
		for _, origin := range []string{"http://127.0.0.1:5173", "http://localhost:8080", "http://[::1]:3000"} {
			res := do(http.MethodGet, path, origin, nil)
			if res.status != http.StatusOK || res.header.Get("Access-Control-Allow-Origin") != origin || res.header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("GET %s from %s: status %d ACAO %q ACAC %q, want 200 allowing the origin without credentials", path, origin, res.status, res.header.Get("Access-Control-Allow-Origin"), res.header.Get("Access-Control-Allow-Credentials"))
			}
		}
		for _, origin := range []string{"https://evil.example", "http://127.0.0.1.evil.example", "null"} {
			if res := do(http.MethodGet, path, origin, nil); res.header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("GET %s from %s: ACAO %q, want none", path, origin, res.header.Get("Access-Control-Allow-Origin"))
			}
		}
	}

	pre := do(http.MethodOptions, devissuer.TokenPath, "http://localhost:5173", http.Header{
		"Access-Control-Request-Method":  {"POST"},
		"Access-Control-Request-Headers": {"content-type"},
	})
	if pre.status != http.StatusNoContent || pre.header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" || pre.header.Get("Access-Control-Allow-Methods") != "POST" {
		t.Errorf("preflight for POST /token: status %d headers %v, want 204 allowing POST from the origin", pre.status, pre.header)
	}

	// A cross-origin token request (the browser's code exchange).
	p := newPKCE("g")
	code := b.loginCode(t, p, "alice", "alice-pw")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {b.redirect}, "client_id": {devissuer.WebClientID}, "code_verifier": {p.verifier}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.iss.URL()+devissuer.TokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://127.0.0.1:5173")
	if res := b.do(t, req); res.status != http.StatusOK || res.header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:5173" {
		t.Errorf("cross-origin POST /token: status %d ACAO %q, want 200 allowing the origin", res.status, res.header.Get("Access-Control-Allow-Origin"))
	}

	// The login form is not an API: no CORS there.
	if res := do(http.MethodGet, devissuer.AuthorizePath+"?"+b.authParams(p, "s").Encode(), "http://127.0.0.1:5173", nil); res.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("GET /authorize sent ACAO %q, want none", res.header.Get("Access-Control-Allow-Origin"))
	}
}
