package relay_test

import (
	"context"
	"flag"
	"io"
	"testing"

	"github.com/decoupledshop/shop/productsvc/relay"
)

// TestFlagsFillTheConfig: the flags' defaults are Config's defaults, and
// Validate parses --subscribers into Config.Subscribers.
func TestFlagsFillTheConfig(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f relay.Flags
	f.RegisterFlags(fs)
	err := fs.Parse([]string{"--subscribers", "cartsvc=http://cart:8082/, audit=https://audit", "--relay-client-id", "id", "--relay-client-secret", "secret", "--relay-lanes", "2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := []relay.Subscriber{{Name: "cartsvc", URL: "http://cart:8082"}, {Name: "audit", URL: "https://audit"}}
	if got := f.Config.Subscribers; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Config.Subscribers = %v, want %v", got, want)
	}
	c := f.Config
	if c.Lanes != 2 || c.MaxAttempts != relay.DefaultMaxAttempts || c.Lease != relay.DefaultLease || c.PollInterval != relay.DefaultPollInterval {
		t.Fatalf("Config = lanes %d, attempts %d, lease %s, poll %s; want 2 and the defaults", c.Lanes, c.MaxAttempts, c.Lease, c.PollInterval)
	}
}

// TestFlagsTokensUseTheGivenEndpoint: with --relay-token-url the issuer's
// discovery is not read (here it could not be).
func TestFlagsTokensUseTheGivenEndpoint(t *testing.T) {
	t.Parallel()
	f := relay.Flags{ClientID: "id", ClientSecret: "secret", TokenURL: "http://127.0.0.1:1/token"}
	if src, err := f.Tokens(context.Background(), "http://127.0.0.1:1"); err != nil || src == nil {
		t.Fatalf("Tokens = %v, %v; want a source without discovery", src, err)
	}
	f.TokenURL = ""
	if _, err := f.Tokens(context.Background(), "http://127.0.0.1:1"); err == nil {
		t.Fatal("Tokens without --relay-token-url and an unreachable issuer: no error, want the discovery's")
	}
}
