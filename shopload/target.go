package shopload

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/decoupledshop/shop/internal/devissuer"
)

// Target is what a benchmark measures: the services, and what is known
// of them. Scenarios needing what is unknown are skipped with a note.
type Target struct {
	// ProductURL and CartURL are the services; NoCacheURL a cartsvc whose
	// product cache is off ("" skips GetCart with the cache off).
	ProductURL, CartURL, NoCacheURL string
	// CartMetricsURL is cartsvc's Prometheus endpoint ("" : none).
	CartMetricsURL string
	// ProductDB and CartDB read productsvc's outbox and cartsvc's
	// product_versions ("" skips the storm and the backlog).
	ProductDB, CartDB string
	// BenchDB is where the raw pgx baselines create their tables ("" skips
	// them).
	BenchDB string
	// FreezeCart stops (true) and continues cartsvc (nil skips the
	// backlog, which is built while cartsvc is frozen).
	FreezeCart func(freeze bool) error
	// Token returns a user's access token.
	Token func(user string) (string, error)
	// Admin is the user with role admin; Users the shoppers.
	Admin string
	Users []string
	// Analyze, if set, updates the planner statistics after seeding and
	// before each scenario.
	Analyze func(ctx context.Context) error
	// Pprof maps a service's name to its admin listener's /debug/pprof/
	// URL, for CPU profiles (BenchConfig.ProfileDir).
	Pprof map[string]string

	watched []watched // processes whose CPU and RSS are reported
}

// Target returns the stack as a benchmark target: everything known.
func (s *Stack) Target() *Target {
	t := &Target{
		ProductURL: s.Products.URL(), CartURL: s.Cart.URL(), CartMetricsURL: s.CartMetricsURL,
		ProductDB: s.ProductDB, CartDB: s.CartDB, BenchDB: s.BenchDB,
		FreezeCart: func(freeze bool) error {
			if freeze {
				return s.Cart.Signal(syscall.SIGSTOP)
			}
			return s.Cart.Signal(syscall.SIGCONT)
		},
		Token: s.Issuer.UserToken, Admin: AdminUser, Analyze: s.Analyze,
		Pprof: map[string]string{
			"productsvc": strings.TrimSuffix(s.ProductMetricsURL, "metrics") + "debug/pprof/",
			"cartsvc":    strings.TrimSuffix(s.CartMetricsURL, "metrics") + "debug/pprof/",
		},
		watched: []watched{
			{name: "productsvc", pid: func() int { return s.Products.Pid() }},
			{name: "cartsvc", pid: s.Cart.Pid},
			{name: "postgres", pid: s.PostmasterPid, tree: true},
		},
	}
	for i := range s.cfg.Users {
		t.Users = append(t.Users, UserName(i))
	}
	if s.CartNoCache != nil {
		t.NoCacheURL = s.CartNoCache.URL()
		t.watched = append(t.watched, watched{name: "cartsvc-nocache", pid: s.CartNoCache.Pid})
	}
	return t
}

// checkLoopback refuses a URL whose host is not loopback: the load tool
// never sends load anywhere else.
func checkLoopback(flagName, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: %q is not an http(s) URL", flagName, raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s: %q is not on loopback; shopload loads only this machine", flagName, raw)
	}
	return nil
}

// passwordTokens returns a Token function using the password grant of the
// issuer at issuerURL (the dev issuer's demo users have their name as
// password, which password "" means).
func passwordTokens(issuerURL, password string) func(user string) (string, error) {
	return func(user string) (string, error) {
		pw := password
		if pw == "" {
			pw = user
		}
		form := url.Values{"grant_type": {"password"}, "client_id": {devissuer.WebClientID}, "username": {user}, "password": {pw}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(issuerURL, "/")+devissuer.TokenPath, strings.NewReader(form.Encode()))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", fmt.Errorf("token for %s: %w", user, err)
		}
		defer resp.Body.Close()
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil || body.AccessToken == "" {
			return "", fmt.Errorf("the issuer refused a token for %s (HTTP %d)", user, resp.StatusCode)
		}
		return body.AccessToken, nil
	}
}
