package devissuer_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/decoupledshop/shop/internal/devissuer"
)

func TestKeyFileKeepsTokensValidAcrossRestarts(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.KeyFile = filepath.Join(t.TempDir(), "dev", "issuer-keys.json")

	first, err := devissuer.Start(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(first.URL(), "http://")
	tok, err := first.UserToken("alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := first.RotateKeys(); err != nil { // tok is now signed by a retired key
		t.Fatal(err)
	}
	published := kids(fetchJWKS(t, first))
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(cfg.KeyFile)
	if err != nil {
		t.Fatalf("no key file written: %v", err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode %v, want 0600 (it holds private keys)", mode)
	}

	// The same issuer again, on the same address: same keys, so the token
	// issued before the restart still verifies.
	second, err := devissuer.Start(cfg, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })
	if got := kids(fetchJWKS(t, second)); !slices.Equal(got, published) {
		t.Fatalf("JWKS after restart = %v, want the keys published before it %v", got, published)
	}
	verified(t, second, tok)

	second.RemoveOldKeys()
	third, err := devissuer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := kids(third.JWKS()); !slices.Equal(got, published[:2]) {
		t.Errorf("after RemoveOldKeys the key file holds %v, want only current and next %v", got, published[:2])
	}
}

func TestWithoutKeyFileEveryStartHasFreshKeys(t *testing.T) {
	t.Parallel()
	a, err := devissuer.New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	b, err := devissuer.New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if ka, kb := kids(a.JWKS()), kids(b.JWKS()); slices.Equal(ka, kb) {
		t.Errorf("two issuers without a key file share keys %v", ka)
	}
}

func TestKeyFileThatIsNotAKeySetIsRefused(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"not JSON":   "hello",
		"one key":    `{"keys":[]}`,
		"public key": `{"keys":[{"kty":"RSA","n":"sXch","e":"AQAB"},{"kty":"RSA","n":"sXch","e":"AQAB"}]}`,
	} {
		cfg := testConfig()
		cfg.KeyFile = filepath.Join(t.TempDir(), "keys.json")
		if err := os.WriteFile(cfg.KeyFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := devissuer.New(cfg); err == nil || !strings.Contains(err.Error(), cfg.KeyFile) {
			t.Errorf("%s: New = %v, want an error naming the key file", name, err)
		}
	}
}
