package auth_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
)

// clock is an injectable clock shared by the issuer and the verifier.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingTransport counts requests per URL path (e.g. JWKS fetches).
type countingTransport struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.counts[r.URL.Path]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[path]
}

// bundle is one test's world: a real dev issuer, a verifier built by
// discovery over a counting HTTP client, and a shared fake clock.
type bundle struct {
	iss      *devissuer.Issuer
	verifier *auth.Verifier
	clock    *clock
	fetches  *countingTransport
}

// jwksFetches is how many times the verifier fetched the JWKS.
func (b *bundle) jwksFetches() int { return b.fetches.count(devissuer.JWKSPath) }

func issuerConfig(c *clock) devissuer.Config {
	return devissuer.Config{
		Users: map[string]devissuer.User{
			"alice": {Password: "alice-pw"},
			"root":  {Password: "root-pw", Roles: []string{"admin"}},
		},
		Clients: map[string]devissuer.Client{
			"productsvc": {Secret: "productsvc-secret", Scopes: []string{"events:write"}},
			"reporting":  {Secret: "reporting-secret", Scopes: []string{"reports:read"}},
		},
		Now: c.Now,
	}
}

// setup starts an issuer and builds a verifier for it; adjust may change
// the verifier config (IssuerURL, HTTPClient and Now are preset).
func setup(t testing.TB, adjust func(*auth.Config)) *bundle {
	t.Helper()
	c := &clock{t: time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)}
	iss := issuertest.New(t, issuerConfig(c))
	fetches := &countingTransport{counts: map[string]int{}}
	cfg := auth.Config{
		IssuerURL:  iss.URL(),
		HTTPClient: &http.Client{Transport: fetches, Timeout: 10 * time.Second},
		Now:        c.Now,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	v, err := auth.NewVerifier(t.Context(), cfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return &bundle{iss: iss, verifier: v, clock: c, fetches: fetches}
}

const testService = "/test.v1.TestService/"

var (
	procPublic       = testService + "Public"
	procUser         = testService + "User"
	procAdmin        = testService + "Admin"
	procService      = testService + "Service"
	procUnclassified = testService + "Unclassified"
)

var testRules = auth.Rules{
	procPublic:  auth.Public,
	procUser:    auth.User,
	procAdmin:   auth.Admin,
	procService: auth.Service,
}

// describe renders the identity a handler saw, so tests can assert that
// the right caller reached it.
func describe(ctx context.Context) string {
	id, ok := auth.FromContext(ctx)
	if !ok {
		return "anonymous"
	}
	return fmt.Sprintf("%s service=%t", id.Subject, id.Service)
}

// startAPI serves tiny real Connect handlers behind the middleware, over
// HTTP/1.1 and unencrypted HTTP/2.
func startAPI(t testing.TB, v *auth.Verifier, logger *slog.Logger) string {
	t.Helper()
	mux := http.NewServeMux()
	for _, p := range []string{procPublic, procUser, procAdmin, procService, procUnclassified} {
		mux.Handle(p, connect.NewUnaryHandler(p,
			func(ctx context.Context, _ *connect.Request[emptypb.Empty]) (*connect.Response[wrapperspb.StringValue], error) {
				return connect.NewResponse(wrapperspb.String(describe(ctx))), nil
			},
			connect.WithIdempotency(connect.IdempotencyNoSideEffects),
		))
	}
	opts := []auth.MiddlewareOption{}
	if logger != nil {
		opts = append(opts, auth.WithLogger(logger))
	}
	srv := httptest.NewUnstartedServer(auth.Middleware(v, testRules, mux, opts...))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// clients are HTTP clients for each transport.
var (
	http1Client = &http.Client{Transport: &http.Transport{}}
	h2cClient   = func() *http.Client {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		return &http.Client{Transport: &http.Transport{Protocols: p}}
	}()
)

// protocol is one way to call a procedure.
type protocol struct {
	name   string
	client *http.Client
	opts   []connect.ClientOption
}

var protocols = []protocol{
	{"connect", http1Client, nil},
	{"connect-get", http1Client, []connect.ClientOption{connect.WithHTTPGet(), connect.WithIdempotency(connect.IdempotencyNoSideEffects)}},
	{"grpc", h2cClient, []connect.ClientOption{connect.WithGRPC()}},
	{"grpc-web", http1Client, []connect.ClientOption{connect.WithGRPCWeb()}},
}

// call invokes procedure with the given Authorization header value ("" for
// none) and returns the handler's answer or the error.
func call(ctx context.Context, p protocol, baseURL, procedure, authorization string) (string, error) {
	client := connect.NewClient[emptypb.Empty, wrapperspb.StringValue](p.client, baseURL+procedure, p.opts...)
	req := connect.NewRequest(&emptypb.Empty{})
	if authorization != "" {
		req.Header().Set("Authorization", authorization)
	}
	res, err := client.CallUnary(ctx, req)
	if err != nil {
		return "", err
	}
	return res.Msg.GetValue(), nil
}
