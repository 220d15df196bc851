// Package shoptest starts the real parts service tests need (the dev issuer
// with the standard test users, a hardened server on loopback) and builds
// Connect clients for every protocol, so service tests read as stories.
package shoptest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/server"
)

// Usernames and client ids of the standard test identities (the dev
// issuer's demo identities).
const (
	Alice = devissuer.DemoAlice // a shopper
	Bob   = devissuer.DemoBob   // another shopper
	Admin = devissuer.DemoAdmin // has the admin role
	// EventsClient is a service client with the events:write scope.
	EventsClient = devissuer.DemoRelayClient
)

// IssuerConfig is the dev issuer configuration with the standard test
// identities.
func IssuerConfig() devissuer.Config { return devissuer.DemoConfig() }

// Issuer starts the dev issuer with IssuerConfig for the test.
func Issuer(t testing.TB) *devissuer.Issuer {
	t.Helper()
	return issuertest.New(t, IssuerConfig())
}

// Verifier returns a token verifier for iss with default settings.
func Verifier(t testing.TB, iss *devissuer.Issuer) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(context.Background(), auth.Config{IssuerURL: iss.URL()})
	if err != nil {
		t.Fatalf("token verifier: %v", err)
	}
	return v
}

// ServerConfig is a server configuration for tests: no drain delay, logs to
// the test output.
func ServerConfig(t testing.TB, ready func(context.Context) error) server.Config {
	return server.Config{
		DrainDelay: -1,
		Ready:      ready,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// Serve serves srv on a fresh loopback port until the test ends and returns
// its base URL ("http://127.0.0.1:port").
func Serve(t testing.TB, srv *server.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("server did not shut down within 10s")
		}
	})
	return "http://" + ln.Addr().String()
}

// HTTPClient speaks HTTP/1.1 and cleartext HTTP/2 (for gRPC).
func HTTPClient() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP1(true)
	return &http.Client{Transport: &http.Transport{Protocols: p}, Timeout: 30 * time.Second}
}

// h2cClient speaks only cleartext HTTP/2, as gRPC requires.
func h2cClient() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p}, Timeout: 30 * time.Second}
}

// Protocol is one way a client talks to the services.
type Protocol struct {
	Name    string
	Client  *http.Client
	Options []connect.ClientOption
}

// Protocols are Connect with JSON, Connect with binary protobuf, gRPC and
// gRPC-Web.
func Protocols() []Protocol {
	return []Protocol{
		{Name: "connect+json", Client: HTTPClient(), Options: []connect.ClientOption{connect.WithProtoJSON()}},
		{Name: "connect+proto", Client: HTTPClient()},
		{Name: "grpc", Client: h2cClient(), Options: []connect.ClientOption{connect.WithGRPC()}},
		{Name: "grpc-web", Client: HTTPClient(), Options: []connect.ClientOption{connect.WithGRPCWeb()}},
	}
}

// ConnectJSON is the protocol curl users and browsers speak.
func ConnectJSON() Protocol { return Protocols()[0] }

// Bearer returns a client interceptor that sends token as a bearer token
// (none when token is empty).
func Bearer(token string) connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if token != "" {
				req.Header().Set("Authorization", "Bearer "+token)
			}
			return next(ctx, req)
		}
	})
}

// Code returns err's Connect code, or 0 for nil (connect.CodeOf says
// Unknown for nil, which hides a missing error).
func Code(err error) connect.Code {
	if err == nil {
		return 0
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return connect.CodeUnknown
}

// ClientOptions combines a protocol's options with a bearer token.
func (p Protocol) ClientOptions(token string) []connect.ClientOption {
	return append([]connect.ClientOption{connect.WithInterceptors(Bearer(token))}, p.Options...)
}
