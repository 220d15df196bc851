package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/decoupledshop/shop/internal/server"
)

// corsRequest sends a request with an Origin header (and optional body)
// over HTTP/1.1 and returns the response with its body drained.
func corsRequest(t *testing.T, b *testBundle, method, path, origin string, header http.Header, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.baseURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	res, err := b.http1.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	res.Body.Close()
	return res
}

func preflight(t *testing.T, b *testBundle, origin string) *http.Response {
	t.Helper()
	return corsRequest(t, b, http.MethodOptions, echoTextProcedure, origin, http.Header{
		"Access-Control-Request-Method":  {"POST"},
		"Access-Control-Request-Headers": {"authorization,connect-protocol-version,content-type"},
	}, "")
}

func TestCORSAllowsListedOrigins(t *testing.T) {
	t.Parallel()
	const allowed = "http://localhost:5173"
	b := setup(t, server.Config{CORSAllowedOrigins: []string{"http://127.0.0.1:8080", allowed}}, nil)

	res := preflight(t, b, allowed)
	if res.StatusCode != http.StatusNoContent {
		t.Errorf("preflight from %s: status %d, want 204 (answered before the Connect handler, which would say 405)", allowed, res.StatusCode)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":  allowed,
		"Access-Control-Allow-Methods": "POST",
		"Access-Control-Allow-Headers": "authorization,connect-protocol-version,content-type",
		"Access-Control-Max-Age":       "7200",
	}
	for k, v := range want {
		if got := res.Header.Get(k); got != v {
			t.Errorf("preflight %s = %q, want %q", k, got, v)
		}
	}
	if got := res.Header.Get("Access-Control-Allow-Credentials"); got != "" {
		t.Errorf("preflight allows credentials (%q), want not", got)
	}

	// GET is allowed too (Connect GET reads); a header outside the list is not.
	get := corsRequest(t, b, http.MethodOptions, echoTextProcedure, allowed, http.Header{"Access-Control-Request-Method": {"GET"}}, "")
	if get.Header.Get("Access-Control-Allow-Origin") != allowed || get.Header.Get("Access-Control-Allow-Methods") != "GET" {
		t.Errorf("GET preflight: headers %v, want GET allowed for %s", get.Header, allowed)
	}
	odd := corsRequest(t, b, http.MethodOptions, echoTextProcedure, allowed, http.Header{
		"Access-Control-Request-Method":  {"POST"},
		"Access-Control-Request-Headers": {"x-secret-header"},
	}, "")
	if got := odd.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("preflight asking for x-secret-header: ACAO %q, want none", got)
	}

	// A real Connect call from the allowed origin.
	call := corsRequest(t, b, http.MethodPost, echoTextProcedure, allowed, http.Header{"Content-Type": {"application/json"}}, `"hi"`)
	if call.StatusCode != http.StatusOK || call.Header.Get("Access-Control-Allow-Origin") != allowed {
		t.Errorf("POST from %s: status %d ACAO %q, want 200 allowing the origin", allowed, call.StatusCode, call.Header.Get("Access-Control-Allow-Origin"))
	}
	if exposed := call.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(exposed, "Grpc-Status") {
		t.Errorf("Access-Control-Expose-Headers = %q, want the gRPC-Web status headers", exposed)
	}
	if vary := strings.Join(call.Header.Values("Vary"), ","); !strings.Contains(vary, "Origin") {
		t.Errorf("Vary = %q, want Origin (responses differ per origin)", vary)
	}

	// Another origin gets no CORS headers, on preflights and real calls.
	for _, origin := range []string{"https://evil.example", "http://localhost:5174", "null"} {
		wantNoCORS(t, b, origin, "from "+origin)
	}
}

func TestNoCORSHeadersWithoutAllowedOrigins(t *testing.T) {
	t.Parallel()
	b := setup(t, server.Config{}, nil)
	wantNoCORS(t, b, "http://localhost:5173", "without CORSAllowedOrigins")
}

// wantNoCORS sends a preflight and a Connect call from origin and fails on
// any Access-Control- header in either answer; when says in which case.
func wantNoCORS(t *testing.T, b *testBundle, origin, when string) {
	t.Helper()
	for name, res := range map[string]*http.Response{
		"preflight": preflight(t, b, origin),
		"POST":      corsRequest(t, b, http.MethodPost, echoTextProcedure, origin, http.Header{"Content-Type": {"application/json"}}, `"hi"`),
	} {
		for k := range res.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s %s: header %s = %q, want no CORS headers", name, when, k, res.Header.Get(k))
			}
		}
	}
}
