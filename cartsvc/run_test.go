package cartsvc_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/decoupledshop/shop/cartsvc"
)

func noEnv(string) string { return "" }

func TestRunHelpDocumentsFlags(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := cartsvc.Run(context.Background(), []string{"--help"}, noEnv, &out, io.Discard); err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{
		"-database-url", "DATABASE_URL", "-oidc-issuer-url", "OIDC_ISSUER_URL", "-addr", "-currency",
		"-product-url", "PRODUCT_URL", "-product-timeout", "PRODUCT_TIMEOUT", "500ms",
		"-product-cache-ttl", "-promo-hold-idle", "24h0m0s",
		"-product-breaker-failures", "PRODUCT_BREAKER_FAILURES", "-product-breaker-open", "PRODUCT_BREAKER_OPEN", "500ms",
		"-product-breaker-open-max", "PRODUCT_BREAKER_OPEN_MAX", "30s",
		"-events-rate", "EVENTS_RATE", "5000", "-replicas", "REPLICAS", "-inbox-retention", "168h0m0s",
		"-database-direct-url", "EventSinkService",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %s:\n%s", want, out.String())
		}
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "PRODUCT_URL"},
		{[]string{"--product-url", "localhost:8081"}, "PRODUCT_URL"},
		{[]string{"--product-url", "http://localhost:8081", "--currency", "euro"}, "currency"},
		{[]string{"--product-url", "http://localhost:8081", "--product-timeout", "0s"}, "product-timeout"},
		{[]string{"--product-url", "http://localhost:8081", "--product-breaker-failures", "0"}, "product-breaker-failures"},
		{[]string{"--product-url", "http://localhost:8081", "--product-breaker-open", "2s", "--product-breaker-open-max", "1s"}, "product-breaker-open-max"},
		{[]string{"--product-url", "http://localhost:8081", "--events-rate", "0"}, "events-rate"},
		{[]string{"--product-url", "http://localhost:8081", "--events-rate", "NaN"}, "events-rate"},
		{[]string{"--product-url", "http://localhost:8081", "--replicas", "0"}, "replicas"},
		{[]string{"--product-url", "http://localhost:8081", "--inbox-retention", "-1h"}, "inbox-retention"},
		{[]string{"--product-url", "http://localhost:8081"}, "DATABASE_URL"},
	} {
		err := cartsvc.Run(context.Background(), c.args, noEnv, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run %q: %v; want an error naming %s", c.args, err, c.want)
		}
	}
}
