package devissuer_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
)

// codeBundle is an issuer on a test clock and a browser-like client that
// does not follow redirects.
type codeBundle struct {
	iss      *devissuer.Issuer
	clock    *clock
	client   *http.Client
	redirect string
}

func setupCode(t *testing.T) *codeBundle {
	t.Helper()
	clk := &clock{now: fixedNow}
	cfg := testConfig()
	cfg.Now = clk.Now
	return &codeBundle{
		iss:   issuertest.New(t, cfg),
		clock: clk,
		client: &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Timeout:       10 * time.Second,
		},
		redirect: "http://127.0.0.1:5173/shop/",
	}
}

// pkce is a code verifier and its S256 challenge.
type pkce struct{ verifier, challenge string }

func newPKCE(seed string) pkce {
	v := base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat(seed, 40)[:40])) // 54 characters
	sum := sha256.Sum256([]byte(v))
	return pkce{verifier: v, challenge: base64.RawURLEncoding.EncodeToString(sum[:])}
}

// authParams is a valid authorization request.
func (b *codeBundle) authParams(p pkce, state string) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {devissuer.WebClientID},
		"redirect_uri":          {b.redirect},
		"state":                 {state},
		"code_challenge":        {p.challenge},
		"code_challenge_method": {"S256"},
		"scope":                 {"openid profile"},
	}
}

// page is an HTTP response with its body read.
type page struct {
	status   int
	location string
	header   http.Header
	body     string
}

func (b *codeBundle) do(t *testing.T, req *http.Request) page {
	t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{status: resp.StatusCode, location: resp.Header.Get("Location"), header: resp.Header, body: string(body)}
}

func (b *codeBundle) getAuthorize(t *testing.T, params url.Values) page {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.iss.URL()+devissuer.AuthorizePath+"?"+params.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.do(t, req)
}

// postLogin submits the login form as the browser would: the request's
// parameters (hidden fields) plus username and password.
func (b *codeBundle) postLogin(t *testing.T, params url.Values, username, password string) page {
	t.Helper()
	form := url.Values{}
	for k, v := range params {
		form[k] = v
	}
	form.Set("username", username)
	form.Set("password", password)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.iss.URL()+devissuer.AuthorizePath, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(t, req)
}

// loginCode logs username in and returns the code from the redirect.
func (b *codeBundle) loginCode(t *testing.T, p pkce, username, password string) string {
	t.Helper()
	res := b.postLogin(t, b.authParams(p, "st"), username, password)
	if res.status != http.StatusFound {
		t.Fatalf("login as %s: status %d, want 302; body:\n%s", username, res.status, res.body)
	}
	loc, err := url.Parse(res.location)
	if err != nil {
		t.Fatal(err)
	}
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("redirect %s has no code", res.location)
	}
	return code
}

func (b *codeBundle) exchange(t *testing.T, code, verifier string) tokenResult {
	t.Helper()
	return postToken(t, b.iss, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {b.redirect},
		"client_id":     {devissuer.WebClientID},
		"code_verifier": {verifier},
	}, "", "")
}

func TestAuthorizationCodeFlowWithPKCE(t *testing.T) {
	t.Parallel()
	b := setupCode(t)
	p := newPKCE("a")
	state := "xyz 42/&=é"

	form := b.getAuthorize(t, b.authParams(p, state))
	if form.status != http.StatusOK || !strings.HasPrefix(form.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /authorize: status %d type %q, want a 200 HTML page", form.status, form.header.Get("Content-Type"))
	}
	for _, want := range []string{"DEVELOPMENT ISSUER", `name="username"`, `name="password"`, "<b>alice</b>", "<b>root</b>", "role admin", `value="` + p.challenge + `"`} {
		if !strings.Contains(form.body, want) {
			t.Errorf("login page lacks %q:\n%s", want, form.body)
		}
	}
	if csp := form.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("login page CSP %q, want frame-ancestors 'none'", csp)
	}

	res := b.postLogin(t, b.authParams(p, state), "alice", "alice-pw")
	if res.status != http.StatusFound {
		t.Fatalf("login: status %d, want 302; body:\n%s", res.status, res.body)
	}
	loc, err := url.Parse(res.location)
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != b.redirect {
		t.Errorf("redirected to %s, want the redirect_uri %s", got, b.redirect)
	}
	if q.Get("state") != state || q.Get("iss") != b.iss.URL() || q.Get("code") == "" {
		t.Errorf("redirect query %v, want state %q echoed, iss %s and a code", q, state, b.iss.URL())
	}

	tok := b.exchange(t, q.Get("code"), p.verifier)
	if tok.status != http.StatusOK || tok.TokenType != "Bearer" || tok.Scope != devissuer.UserScope {
		t.Fatalf("code exchange: %+v, want 200 Bearer with the user scope", tok)
	}
	h, c := verified(t, b.iss, tok.AccessToken)
	if h.ExtraHeaders["typ"] != "at+jwt" || c["sub"] != devissuer.Subject("alice") || c["client_id"] != devissuer.WebClientID || c["aud"] != "shop-api" || c["preferred_username"] != "alice" {
		t.Errorf("token typ=%v claims %v, want an at+jwt user token for alice", h.ExtraHeaders["typ"], c)
	}
}

func TestAuthorizationCodeExchangeRefusals(t *testing.T) {
	t.Parallel()
	b := setupCode(t)
	p := newPKCE("b")

	// Wrong verifier: refused, and the code is spent.
	code := b.loginCode(t, p, "alice", "alice-pw")
	if res := b.exchange(t, code, newPKCE("c").verifier); res.status != http.StatusBadRequest || res.Error != "invalid_grant" {
		t.Errorf("wrong code_verifier: %+v, want 400 invalid_grant", res)
	}
	if res := b.exchange(t, code, p.verifier); res.Error != "invalid_grant" {
		t.Errorf("right verifier after a wrong one: %+v, want invalid_grant (the code is spent)", res)
	}

	// Reused code.
	code = b.loginCode(t, p, "alice", "alice-pw")
	if res := b.exchange(t, code, p.verifier); res.status != http.StatusOK {
		t.Fatalf("first exchange: %+v, want 200", res)
	}
	if res := b.exchange(t, code, p.verifier); res.status != http.StatusBadRequest || res.Error != "invalid_grant" || res.AccessToken != "" {
		t.Errorf("second exchange of the same code: %+v, want 400 invalid_grant", res)
	}

	// Expiry: valid until 60 s after issue, exclusive.
	early := b.loginCode(t, p, "alice", "alice-pw")
	late := b.loginCode(t, p, "alice", "alice-pw")
	b.clock.Advance(devissuer.AuthCodeTTL - time.Second)
	if res := b.exchange(t, early, p.verifier); res.status != http.StatusOK {
		t.Errorf("exchange 59 s after issue: %+v, want 200", res)
	}
	b.clock.Advance(time.Second)
	if res := b.exchange(t, late, p.verifier); res.status != http.StatusBadRequest || res.Error != "invalid_grant" {
		t.Errorf("exchange 60 s after issue: %+v, want 400 invalid_grant", res)
	}

	// Bound to the redirect_uri it was issued for.
	code = b.loginCode(t, p, "alice", "alice-pw")
	res := postToken(t, b.iss, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "client_id": {devissuer.WebClientID},
		"redirect_uri": {"http://127.0.0.1:5173/other/"}, "code_verifier": {p.verifier},
	}, "", "")
	if res.Error != "invalid_grant" {
		t.Errorf("exchange with another redirect_uri: %+v, want invalid_grant", res)
	}

	// A malformed verifier whose hash would match is still refused.
	short := pkce{verifier: "short"}
	sum := sha256.Sum256([]byte(short.verifier))
	short.challenge = base64.RawURLEncoding.EncodeToString(sum[:])
	code = b.loginCode(t, short, "alice", "alice-pw")
	if res := b.exchange(t, code, short.verifier); res.Error != "invalid_grant" {
		t.Errorf("5-character verifier: %+v, want invalid_grant (RFC 7636 needs 43..128)", res)
	}

	// Made-up code.
	if res := b.exchange(t, "made-up", p.verifier); res.Error != "invalid_grant" {
		t.Errorf("unknown code: %+v, want invalid_grant", res)
	}
}

func TestAuthorizeRefusesForeignRedirectURIs(t *testing.T) {
	t.Parallel()
	b := setupCode(t)
	p := newPKCE("d")
	for _, uri := range []string{
		"",
		"https://evil.example/cb",
		"http://evil.example/cb",
		"http://127.0.0.1.evil.example/cb",
		"http://localhost.evil.example/cb",
		"http://localhost@evil.example/cb",
		"http://alice@127.0.0.1:5173/cb",
		"//127.0.0.1:5173/cb",
		"/cb",
		"javascript:alert(1)",
		"http://127.0.0.1:5173/cb#fragment",
		"https://127.0.0.1:5173/cb",
		"http://10.0.0.1/cb",
	} {
		params := b.authParams(p, "s")
		params.Set("redirect_uri", uri)
		for name, res := range map[string]page{
			"GET":  b.getAuthorize(t, params),
			"POST": b.postLogin(t, params, "alice", "alice-pw"),
		} {
			if res.status != http.StatusBadRequest || res.location != "" || !strings.Contains(res.body, "redirect_uri") {
				t.Errorf("%s /authorize with redirect_uri %q: status %d location %q, want 400 naming redirect_uri and no redirect", name, uri, res.status, res.location)
			}
		}
	}

	// Loopback redirect URIs of every kind are accepted.
	for _, uri := range []string{"http://127.0.0.1:8080/", "http://localhost:3000/cb?x=1", "http://[::1]:9/", "http://127.0.0.1/"} {
		params := b.authParams(p, "s")
		params.Set("redirect_uri", uri)
		if res := b.getAuthorize(t, params); res.status != http.StatusOK {
			t.Errorf("GET /authorize with loopback redirect_uri %q: status %d, want 200", uri, res.status)
		}
	}

	// Unknown client: shown, never redirected.
	params := b.authParams(p, "s")
	params.Set("client_id", "productsvc")
	if res := b.getAuthorize(t, params); res.status != http.StatusBadRequest || res.location != "" {
		t.Errorf("GET /authorize for client productsvc: status %d location %q, want 400 without redirect", res.status, res.location)
	}
}

func TestAuthorizeRedirectsRequestErrorsWithState(t *testing.T) {
	t.Parallel()
	b := setupCode(t)
	p := newPKCE("e")
	cases := map[string]struct {
		set       map[string]string
		wantError string
	}{
		"no PKCE":              {map[string]string{"code_challenge": "", "code_challenge_method": ""}, "invalid_request"},
		"plain PKCE":           {map[string]string{"code_challenge_method": "plain"}, "invalid_request"},
		"short challenge":      {map[string]string{"code_challenge": "abc"}, "invalid_request"},
		"implicit flow":        {map[string]string{"response_type": "token"}, "unsupported_response_type"},
		"missing responseType": {map[string]string{"response_type": ""}, "unsupported_response_type"},
	}
	for name, tc := range cases {
		params := b.authParams(p, "keep-me")
		for k, v := range tc.set {
			if v == "" {
				params.Del(k)
			} else {
				params.Set(k, v)
			}
		}
		res := b.getAuthorize(t, params)
		loc, _ := url.Parse(res.location)
		if res.status != http.StatusFound || !strings.HasPrefix(res.location, b.redirect) || loc.Query().Get("error") != tc.wantError || loc.Query().Get("state") != "keep-me" || loc.Query().Has("code") {
			t.Errorf("%s: status %d location %q, want 302 to the redirect_uri with error=%s, the state and no code", name, res.status, res.location, tc.wantError)
		}
	}

	// Cancel on the login form.
	params := b.authParams(p, "keep-me")
	params.Set("cancel", "1")
	res := b.postLogin(t, params, "", "")
	if loc, _ := url.Parse(res.location); res.status != http.StatusFound || loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "keep-me" {
		t.Errorf("cancel: status %d location %q, want 302 with error=access_denied and the state", res.status, res.location)
	}
}

func TestLoginFormEscapesWhatItEchoes(t *testing.T) {
	t.Parallel()
	b := setupCode(t)
	p := newPKCE("f")
	const xss = `"><script>alert(1)</script>`

	res := b.postLogin(t, b.authParams(p, "s"), xss, "wrong")
	if res.status != http.StatusUnauthorized || res.location != "" {
		t.Fatalf("wrong password: status %d location %q, want 401 and the form again", res.status, res.location)
	}
	if strings.Contains(res.body, "<script>") || !strings.Contains(res.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("username echoed unescaped (or not at all):\n%s", res.body)
	}
	if !strings.Contains(res.body, "Wrong username or password") {
		t.Errorf("no error message on a wrong password:\n%s", res.body)
	}

	// The state travels through the form as a hidden field.
	form := b.getAuthorize(t, b.authParams(p, xss))
	if form.status != http.StatusOK || strings.Contains(form.body, "<script>") || !strings.Contains(form.body, "&lt;script&gt;") {
		t.Errorf("state echoed unescaped in the form (status %d):\n%s", form.status, form.body)
	}

	// The wrong-password page still carries the request: a retry works.
	if code := b.loginCode(t, p, "alice", "alice-pw"); b.exchange(t, code, p.verifier).status != http.StatusOK {
		t.Error("login after a failed attempt did not yield a working code")
	}
}
