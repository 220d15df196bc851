package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"time"

	"github.com/decoupledshop/shop/internal/auth"
)

// DefaultIssuerWait is how long start-up waits for the OIDC issuer by
// default (--oidc-issuer-wait).
const DefaultIssuerWait = 2 * time.Minute

// Backoff between attempts to reach the issuer at start-up.
const (
	issuerFirstDelay = 250 * time.Millisecond
	issuerMaxDelay   = 5 * time.Second
)

// discoveryUnavailable matches go-oidc's error for a discovery answered with
// a server error (its text is "<status>: <body>"), e.g. a proxy's 503 while
// the issuer starts.
var discoveryUnavailable = regexp.MustCompile(`OIDC discovery for \S+: 5\d\d `)

// issuerUnreachable reports whether err from auth.NewVerifier may pass if
// tried again: the issuer could not be reached, answered its discovery with a
// server error, or its keys could not be fetched. A misconfiguration (an
// issuer URL that does not match the discovery document, an invalid option)
// is not.
func issuerUnreachable(err error) bool {
	var uerr *url.Error
	return errors.As(err, &uerr) || errors.Is(err, auth.ErrKeysUnavailable) || discoveryUnavailable.MatchString(err.Error())
}

// newVerifier builds the token verifier, retrying while the issuer is
// unreachable (see issuerUnreachable) for up to wait, with exponential
// backoff from 250 ms to 5 s, logging each failed attempt at WARN. Other
// errors, ctx's end and the end of wait return at once.
func newVerifier(ctx context.Context, cfg auth.Config, wait time.Duration, log *slog.Logger) (*auth.Verifier, error) {
	start := time.Now()
	delay := issuerFirstDelay
	for attempt := 1; ; attempt++ {
		v, err := auth.NewVerifier(ctx, cfg)
		if err == nil {
			if attempt > 1 {
				log.InfoContext(ctx, "OIDC issuer reachable", "issuer", cfg.IssuerURL, "attempts", attempt, "waited", time.Since(start).Round(time.Millisecond).String())
			}
			return v, nil
		}
		left := wait - time.Since(start)
		if !issuerUnreachable(err) {
			return nil, err
		}
		if left <= 0 {
			return nil, fmt.Errorf("%w (gave up after %d attempts in %s; --oidc-issuer-wait sets how long to wait)", err, attempt, time.Since(start).Round(time.Second))
		}
		delay = min(delay, left)
		log.WarnContext(ctx, "OIDC issuer not reachable yet, retrying", "issuer", cfg.IssuerURL, "attempt", attempt, "retry_in", delay.String(), "error", err.Error())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for the OIDC issuer %s: %w", cfg.IssuerURL, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, issuerMaxDelay)
	}
}
