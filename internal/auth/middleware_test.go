package auth_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
)

const ok = connect.Code(0)

var (
	unauthenticated = connect.CodeUnauthenticated
	denied          = connect.CodePermissionDenied
	unknown         = connect.CodeUnimplemented // no rule: refused as an unknown procedure
	// allRefused: refused everywhere but on the Public procedure, which
	// never looks at the token.
	allRefused = [5]connect.Code{ok, unauthenticated, unauthenticated, unauthenticated, unknown}
)

// columns of the matrix, in the order of matrixRow.want.
var columns = []string{procPublic, procUser, procAdmin, procService, procUnclassified}

type matrixRow struct {
	name          string
	authorization string
	want          [5]connect.Code // Public, User, Admin, Service, Unclassified
	who           string          // what the handler sees when admitted
}

func TestTokenMatrix(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	api := startAPI(t, b.verifier, nil)
	alice := issuertest.UserClaims(t, b.iss, "alice")
	bearer := func(tok string) string { return "Bearer " + tok }
	aliceWho := devissuer.Subject("alice") + " service=false"

	rows := []matrixRow{
		{"no token", "", [5]connect.Code{ok, unauthenticated, unauthenticated, unauthenticated, unknown}, "anonymous"},
		{"user", bearer(issuertest.UserToken(t, b.iss, "alice")), [5]connect.Code{ok, ok, denied, denied, unknown}, aliceWho},
		{"user, lower-case scheme", "bearer " + issuertest.UserToken(t, b.iss, "alice"), [5]connect.Code{ok, ok, denied, denied, unknown}, aliceWho},
		{"admin", bearer(issuertest.UserToken(t, b.iss, "root")), [5]connect.Code{ok, ok, ok, denied, unknown}, devissuer.Subject("root") + " service=false"},
		{"service", bearer(issuertest.ServiceToken(t, b.iss, "productsvc")), [5]connect.Code{ok, denied, denied, ok, unknown}, "productsvc service=true"},
		{"client token without the service scope", bearer(issuertest.ServiceToken(t, b.iss, "reporting")), [5]connect.Code{ok, denied, denied, denied, unknown}, "reporting service=true"},
		{"garbage", "Bearer not-a-jwt", allRefused, ""},
		{"three garbage segments", "Bearer a.b.c", allRefused, ""},
		{"basic scheme", "Basic YWxpY2U6YWxpY2UtcHc=", allRefused, ""},
		{"scheme without token", "Bearer", allRefused, ""},
		{"token with a space", "Bearer abc def", allRefused, ""},
		{"token scheme unknown", "Token " + issuertest.UserToken(t, b.iss, "root"), allRefused, ""},
	}
	for _, kind := range devissuer.AllBad() {
		rows = append(rows, matrixRow{"bad " + kind.String(), bearer(issuertest.Bad(t, b.iss, kind, alice)), allRefused, ""})
	}

	for _, p := range protocols {
		for _, row := range rows {
			t.Run(p.name+"/"+row.name, func(t *testing.T) {
				t.Parallel()
				for i, procedure := range columns {
					got, err := call(t.Context(), p, api, procedure, row.authorization)
					want, who := row.want[i], row.who
					if procedure == procPublic {
						who = "anonymous" // Public procedures ignore tokens
					}
					if want == ok {
						if err != nil || got != who {
							t.Errorf("%s: got (%q, %v), want success seen as %q", procedure, got, err, who)
						}
						continue
					}
					if code := connect.CodeOf(err); code != want {
						t.Errorf("%s: code %v (err %v), want %v", procedure, code, err, want)
						continue
					}
					checkRefusal(t, procedure, err)
				}
			})
		}
	}
}

// checkRefusal asserts that a refusal is generic and that Unauthenticated
// carries a Bearer challenge.
func checkRefusal(t *testing.T, procedure string, err error) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Errorf("%s: %v is not a *connect.Error", procedure, err)
		return
	}
	generic := map[string]bool{"missing or invalid access token": true, "permission denied": true, "unknown procedure; check the service and method names (server reflection lists them)": true}
	if !generic[ce.Message()] {
		t.Errorf("%s: message %q is not one of the generic messages", procedure, ce.Message())
	}
	challenge := ce.Meta().Get("WWW-Authenticate")
	if ce.Code() == connect.CodeUnauthenticated && !strings.HasPrefix(challenge, `Bearer realm="shop-api"`) {
		t.Errorf("%s: Unauthenticated without a Bearer challenge (WWW-Authenticate %q)", procedure, challenge)
	}
	if ce.Code() != connect.CodeUnauthenticated && challenge != "" {
		t.Errorf("%s: %v carries WWW-Authenticate %q", procedure, ce.Code(), challenge)
	}
}

func TestBearerChallengeNamesTheError(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	api := startAPI(t, b.verifier, nil)
	cases := map[string]string{
		"":                   "Bearer realm=\"shop-api\"",
		"Basic Zm9vOmJhcg==": `Bearer realm="shop-api", error="invalid_request"`,
		"Bearer a.b.c":       `Bearer realm="shop-api", error="invalid_token"`,
	}
	for authorization, want := range cases {
		_, err := call(t.Context(), protocols[0], api, procUser, authorization)
		var ce *connect.Error
		if !errors.As(err, &ce) || ce.Meta().Get("WWW-Authenticate") != want {
			t.Errorf("Authorization %q: err %v, want challenge %q", authorization, err, want)
		}
	}
}

func TestMultipleAuthorizationHeadersAreRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	api := startAPI(t, b.verifier, nil)
	tok := issuertest.UserToken(t, b.iss, "alice")
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, api+procUser, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Add("Authorization", "Bearer "+tok)
	req.Header.Add("Authorization", "Bearer "+tok)
	resp, err := http1Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("two Authorization headers: status %d, want 401", resp.StatusCode)
	}
}

func TestEscapedOrUnknownPathsAreNotClassified(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	api := startAPI(t, b.verifier, nil)
	tok := issuertest.UserToken(t, b.iss, "root")
	for _, path := range []string{
		"/test.v1.TestService/Us%65r", // escaped form of a classified procedure
		"/test.v1.TestService/Public/../Admin",
		"/test.v1.TestService/",
		"/healthz",
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, api+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		req.URL.Opaque = path // send the path exactly as written
		resp, err := http1Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotImplemented {
			t.Errorf("%s: status %d, want 501 (Unimplemented: no rule for it)", path, resp.StatusCode)
		}
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func TestRefusalDetailGoesToTheLogNotTheClient(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	var logs syncBuffer
	api := startAPI(t, b.verifier, slog.New(slog.NewTextHandler(&logs, nil)))
	expired := issuertest.Bad(t, b.iss, devissuer.BadExpired, issuertest.UserClaims(t, b.iss, "alice"))

	_, err := call(t.Context(), protocols[0], api, procUser, "Bearer "+expired)
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Message() != "missing or invalid access token" {
		t.Fatalf("expired token: %v, want the generic Unauthenticated message", err)
	}
	out := logs.String()
	if !strings.Contains(out, "expired") || !strings.Contains(out, procUser) {
		t.Errorf("log %q does not name the procedure and the expiry", out)
	}
	if strings.Contains(out, expired) || strings.Contains(out, strings.Split(expired, ".")[2]) {
		t.Error("the log contains the token")
	}
}

func TestIssuerDownMeansUnavailableForUnknownKeysOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	api := startAPI(t, b.verifier, nil)
	known := issuertest.UserToken(t, b.iss, "alice")
	unknown := issuertest.Bad(t, b.iss, devissuer.BadUnknownKID, issuertest.UserClaims(t, b.iss, "alice"))
	if err := b.iss.Close(); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(auth.DefaultMinRefreshInterval)

	if _, err := call(t.Context(), protocols[0], api, procUser, "Bearer "+unknown); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("unknown kid with the issuer down: %v, want Unavailable", err)
	}
	// Within the refresh interval the failure is remembered, not retried.
	if _, err := call(t.Context(), protocols[0], api, procUser, "Bearer "+unknown); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("second unknown kid with the issuer down: %v, want Unavailable", err)
	}
	if got := b.jwksFetches(); got != 2 {
		t.Errorf("JWKS fetch attempts = %d, want 2 (start + one retry)", got)
	}
	// Cached keys still verify.
	if _, err := call(t.Context(), protocols[0], api, procUser, "Bearer "+known); err != nil {
		t.Errorf("known key with the issuer down: %v, want success from the cache", err)
	}
}
