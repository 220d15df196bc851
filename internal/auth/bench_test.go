package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
)

// BenchmarkVerificationCost measures what a token costs a request over real
// HTTP (Connect protocol, loopback, a handler that does nothing), each
// variant timed in the same loop as the baseline: a Public procedure called
// without a token. Reported ratios (1.0 = as cheap as no token):
//
//	public+token/anon    a Public procedure called with a valid user token
//	user/anon            a User procedure, the same token every time (cached)
//	user-fresh/anon      a User procedure, a token not seen before (cache miss)
//	user-nocache/anon    a User procedure behind a verifier without a cache,
//	                     the same token every time: what every request cost
//	                     before tokens were cached
//
// The tokens are minted before the loop.
func BenchmarkVerificationCost(b *testing.B) {
	bundle := setup(b, nil)
	api := startAPI(b, bundle.verifier, nil)
	uncached, err := auth.NewVerifier(b.Context(), auth.Config{IssuerURL: bundle.iss.URL(), Now: bundle.clock.Now, CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	apiNoCache := startAPI(b, uncached, nil)
	ctx := context.Background()
	p := protocols[0]
	token := "Bearer " + issuertest.UserToken(b, bundle.iss, "alice")
	fresh := make([]string, 0, 1024)
	for range cap(fresh) {
		fresh = append(fresh, "Bearer "+issuertest.UserToken(b, bundle.iss, "alice"))
	}
	var anon, public, user, userFresh, userNoCache time.Duration
	n := 0
	timed := func(total *time.Duration, url, procedure, authorization string) {
		t0 := time.Now()
		if _, err := call(ctx, p, url, procedure, authorization); err != nil {
			b.Fatalf("%s: %v", procedure, err)
		}
		*total += time.Since(t0)
	}
	for b.Loop() {
		timed(&anon, api, procPublic, "")
		timed(&public, api, procPublic, token)
		timed(&user, api, procUser, token)
		timed(&userFresh, api, procUser, fresh[n%len(fresh)])
		timed(&userNoCache, apiNoCache, procUser, token)
		n++
	}
	b.ReportMetric(float64(anon.Nanoseconds())/float64(n), "anon-ns/op")
	b.ReportMetric(float64(public)/float64(anon), "public+token/anon")
	b.ReportMetric(float64(user)/float64(anon), "user/anon")
	b.ReportMetric(float64(userFresh)/float64(anon), "user-fresh/anon")
	b.ReportMetric(float64(userNoCache)/float64(anon), "user-nocache/anon")
}

// BenchmarkVerify measures Verify alone: a token seen before (answered from
// the cache) and the same token with the cache off (full verification).
func BenchmarkVerify(b *testing.B) {
	bundle := setup(b, nil)
	uncached, err := auth.NewVerifier(b.Context(), auth.Config{IssuerURL: bundle.iss.URL(), Now: bundle.clock.Now, CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	token := issuertest.UserToken(b, bundle.iss, "alice")
	for name, v := range map[string]*auth.Verifier{"cached": bundle.verifier, "uncached": uncached} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := v.Verify(b.Context(), token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
