package productsvc_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
)

func TestRunHelpDocumentsFlags(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := productsvc.Run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out, io.Discard)
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"-database-url", "DATABASE_URL", "-oidc-issuer-url", "OIDC_ISSUER_URL", "-currency", "-addr"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %s:\n%s", want, out.String())
		}
	}
}

func TestRunRefusesMissingConfig(t *testing.T) {
	t.Parallel()
	err := productsvc.Run(context.Background(), nil, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("Run without a database: %v; want an error naming DATABASE_URL", err)
	}
	err = productsvc.Run(context.Background(), []string{"--currency", "euro"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "currency") {
		t.Fatalf("Run with a bad currency: %v; want an error naming --currency", err)
	}
}

// TestREADMECatalogCurl runs the real productsvc main (configured through
// the environment, as in a deployment) and the README's curl lines
// verbatim against it.
func TestREADMECatalogCurl(t *testing.T) {
	t.Parallel()
	iss := shoptest.Issuer(t)
	dbURL := pgtest.NewDatabase(t, productSchema)
	addr := shoptest.FreeAddr(t)
	env := map[string]string{
		"ADDR":            addr,
		"DATABASE_URL":    dbURL,
		"OIDC_ISSUER_URL": iss.URL(),
		"DRAIN_DELAY":     "0s",
		"ADMIN_ADDR":      "127.0.0.1:0",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- productsvc.Run(ctx, nil, func(k string) string { return env[k] }, io.Discard, t.Output())
	}()
	base := "http://" + addr
	shoptest.WaitReady(t, base, 20*time.Second, done)

	out := shoptest.RunShell(t, shoptest.ReadmeBlock(t, "catalog-curl"), "ISSUER="+iss.URL(), "PRODUCTS="+base)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-2:]
	if last[0] != "Footwear" || last[1] != "Footwear" {
		t.Fatalf("after the rename the README shows category names %q, want Footwear twice; output:\n%s", last, out)
	}
	for _, want := range []string{`"sku":"RUN-42"`, `"name":"City walker"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
