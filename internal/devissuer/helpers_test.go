package devissuer_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decoupledshop/shop/internal/devissuer"
	jose "github.com/go-jose/go-jose/v4"
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

func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
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

// clock is a test clock the issuer reads and the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
