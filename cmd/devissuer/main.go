// Command devissuer runs the in-repo OIDC issuer with the demo identities
// (alice, bob, admin; passwords = names) and the relay's client
// (productsvc-relay, secret relay-secret) on loopback. DEVELOPMENT ONLY: its
// passwords are public, and its keys are fresh on every start unless
// --key-file keeps them (then tokens outlive a restart).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/envflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devissuer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("devissuer", flag.ContinueOnError)
	addr := fs.String("issuer-addr", "127.0.0.1:8090", "loopback address to serve on")
	ttl := fs.Duration("token-ttl", devissuer.DefaultTokenTTL, "lifetime of issued access tokens")
	keyFile := fs.String("key-file", "", "file keeping the signing keys across restarts (created with new keys if missing, mode 0600); empty: new keys at every start")
	if err := envflag.Parse(fs, args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg := devissuer.DemoConfig()
	cfg.TokenTTL = *ttl
	cfg.KeyFile = *keyFile
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	iss, err := devissuer.Start(cfg, *addr)
	if err != nil {
		return err
	}
	fmt.Printf("dev issuer (DEVELOPMENT ONLY) at %s\n", iss.URL())
	fmt.Printf("relay client (productsvc --relay-client-id/--relay-client-secret): %s / %s\n", devissuer.DemoRelayClient, devissuer.DemoRelaySecret)
	fmt.Printf("admin token: curl -s -d grant_type=password -d client_id=%s -d username=admin -d password=admin %s/token\n", devissuer.WebClientID, iss.URL())
	<-ctx.Done()
	return iss.Close()
}
