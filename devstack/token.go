package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/envflag"
)

// runToken prints an access token for a demo user from the running stack's
// issuer (the password grant; demo passwords equal the user names).
func runToken(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shopdev token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.String("user", "", "demo user: alice, bob or admin")
	issuer := fs.String("issuer-url", "http://127.0.0.1:8090", "the dev stack's issuer")
	if err := envflag.ParsePrefixed(fs, args, "SHOPDEV_", getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	switch *user {
	case devissuer.DemoAlice, devissuer.DemoBob, devissuer.DemoAdmin:
	default:
		return fmt.Errorf("--user must be alice, bob or admin, not %q", *user)
	}
	form := url.Values{
		"grant_type": {"password"}, "client_id": {devissuer.WebClientID},
		"username": {*user}, "password": {*user},
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*issuer, "/")+devissuer.TokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("--issuer-url %q: %w", *issuer, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("no dev issuer answers at %s: start the stack with go run ./cmd/shopdev", *issuer)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return fmt.Errorf("the issuer at %s refused the token request (HTTP %d %s)", *issuer, resp.StatusCode, body.Error)
	}
	fmt.Fprintln(stdout, body.AccessToken)
	return nil
}
