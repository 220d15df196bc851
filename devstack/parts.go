package devstack

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/decoupledshop/shop/cartsvc"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/productsvc"
	"github.com/decoupledshop/shop/web"
)

// noEnv keeps the developer's shell environment (DATABASE_URL and the like)
// out of the in-process services: the stack configures them by flags alone.
func noEnv(string) string { return "" }

// parts returns the stack's long-running pieces, in start order.
func (s *stack) parts() ([]part, error) {
	productsLog, err := s.logFile("productsvc")
	if err != nil {
		return nil, err
	}
	productsArgs := []string{
		"--addr", s.cfg.productsAddr,
		"--admin-addr", s.cfg.productsAdminAddr,
		"--log-format", "text",
		"--database-url", s.productDBURL,
		"--oidc-issuer-url", s.iss.URL(),
		"--drain-delay", "0s",
		"--shutdown-timeout", "5s",
		"--cors-allowed-origins", s.webOrigins(),
		// Every catalog change reaches cartsvc through the outbox relay.
		"--subscribers", "cartsvc=" + baseURL(s.cfg.cartAddr),
		"--relay-client-id", devissuer.DemoRelayClient,
		"--relay-client-secret", devissuer.DemoRelaySecret,
	}
	cartLog, err := s.logFile("cartsvc")
	if err != nil {
		return nil, err
	}
	cartArgs := []string{
		"--addr", s.cfg.cartAddr,
		"--admin-addr", s.cfg.cartAdminAddr,
		"--log-format", "text",
		"--database-url", s.cartDBURL,
		"--oidc-issuer-url", s.iss.URL(),
		"--product-url", baseURL(s.cfg.productsAddr),
		"--drain-delay", "0s",
		"--shutdown-timeout", "5s",
		"--cors-allowed-origins", s.webOrigins(),
	}
	parts := []part{
		{name: "productsvc", ready: baseURL(s.cfg.productsAddr) + "/readyz", run: func(ctx context.Context) error {
			defer productsLog.Close()
			return productsvc.Run(ctx, productsArgs, noEnv, io.Discard, productsLog)
		}},
		{name: "cartsvc", ready: baseURL(s.cfg.cartAddr) + "/readyz", run: func(ctx context.Context) error {
			defer cartLog.Close()
			return cartsvc.Run(ctx, cartArgs, noEnv, io.Discard, cartLog)
		}},
		{name: "web", run: s.serveWeb},
	}
	if bin := s.cfg.findPrometheus(); bin != "" {
		parts = append(parts, part{name: "prometheus", ready: baseURL(s.cfg.prometheusAddr) + "/-/ready", run: func(ctx context.Context) error {
			return s.runPrometheus(ctx, bin)
		}})
	}
	return parts, nil
}

// webOrigins are the storefront's origins the services allow (CORS): the
// address as given, and with localhost for 127.0.0.1.
func (s *stack) webOrigins() string {
	origins := []string{baseURL(s.cfg.webAddr)}
	if host, port, ok := strings.Cut(s.cfg.webAddr, ":"); ok && host == "127.0.0.1" {
		origins = append(origins, "http://localhost:"+port)
	}
	return strings.Join(origins, ",")
}

// serveWeb serves the storefront and its config.json until ctx is done.
func (s *stack) serveWeb(ctx context.Context) error {
	srv := &http.Server{
		Addr: s.cfg.webAddr,
		Handler: web.Handler(web.Config{
			IssuerURL:   s.iss.URL(),
			ProductsURL: baseURL(s.cfg.productsAddr),
			CartURL:     baseURL(s.cfg.cartAddr),
			ClientID:    devissuer.WebClientID,
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
