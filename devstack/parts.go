package devstack

import (
	"context"
	"io"

	"github.com/decoupledshop/shop/productsvc"
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
		"--database-url", s.productDBURL,
		"--oidc-issuer-url", s.iss.URL(),
		"--drain-delay", "0s",
		"--shutdown-timeout", "5s",
	}
	return []part{
		{name: "productsvc", ready: baseURL(s.cfg.productsAddr), run: func(ctx context.Context) error {
			defer productsLog.Close()
			return productsvc.Run(ctx, productsArgs, noEnv, io.Discard, productsLog)
		}},
	}, nil
}
