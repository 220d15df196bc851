// Command devissuer runs the in-repo OIDC issuer with the demo identities
// (alice, bob, admin; passwords = names) on loopback. DEVELOPMENT ONLY: its
// keys are fresh on every start and its passwords are public.
package main

import (
	"context"
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
	if err := envflag.Parse(fs, args, os.Getenv); err != nil {
		return err
	}
	cfg := devissuer.DemoConfig()
	cfg.TokenTTL = *ttl
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	iss, err := devissuer.Start(cfg, *addr)
	if err != nil {
		return err
	}
	fmt.Printf("dev issuer (DEVELOPMENT ONLY) at %s\n", iss.URL())
	fmt.Printf("admin token: curl -s -d grant_type=password -d client_id=%s -d username=admin -d password=admin %s/token\n", devissuer.WebClientID, iss.URL())
	<-ctx.Done()
	return iss.Close()
}
