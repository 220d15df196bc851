package web_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/devstack"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// lockedBuffer collects the stack's output from its goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestStorefrontOnShopdev is the newcomer's story end to end: shopdev runs
// everything (local PostgreSQL, issuer, productsvc with its relay, cartsvc,
// the page); headless chromium logs in as alice through the issuer's form,
// fills the cart and applies the seeded promo code; then the admin pastes
// the curl line shopdev printed to change a price, and deletes another
// product. Both changes reach the cart through the outbox and the event
// relay (cartsvc's product cache TTL is 30 s, far longer than the wait), and
// the open page flags them.
func TestStorefrontOnShopdev(t *testing.T) {
	chromium := browserPrereqs(t)
	t.Parallel()
	dir, err := os.MkdirTemp("/tmp", "shopdev-web-")
	if err == nil {
		err = os.Chmod(dir, 0o755) // as root, the postgres user must reach it
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	issuer, products, cart, page := shoptest.FreeAddr(t), shoptest.FreeAddr(t), shoptest.FreeAddr(t), shoptest.FreeAddr(t)
	productsAdmin, cartAdmin := shoptest.FreeAddr(t), shoptest.FreeAddr(t)
	var out lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- devstack.Run(ctx, []string{"--data-dir", dir, "--issuer-addr", issuer, "--products-addr", products,
			"--cart-addr", cart, "--web-addr", page, "--products-admin-addr", productsAdmin, "--cart-admin-addr", cartAdmin,
			"--prometheus=false"}, func(string) string { return "" }, &out, &out)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("shopdev: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("shopdev did not stop within 30s")
		}
	})
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(out.String(), "shop is running"); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("shopdev exited: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("shopdev not running after 2m:\n%s", out.String())
		}
	}
	// The two lines shopdev prints for an admin price change.
	_, after, ok := strings.Cut(out.String(), "Change a price as admin")
	if !ok {
		t.Fatalf("shopdev printed no admin price-change lines:\n%s", out.String())
	}
	lines := strings.Split(after, "\n")[1:4]
	pasted := strings.TrimSpace(lines[0]) + "\n" + strings.TrimSpace(lines[1]) + "\n" + strings.TrimSpace(lines[2])
	pasted = strings.ReplaceAll(pasted, "go run ./cmd/shopdev token", "go run ./cmd/shopdev token --issuer-url http://"+issuer)

	admin, err := (func() (string, error) {
		var tok bytes.Buffer
		err := devstack.Run(ctx, []string{"token", "--user", devissuer.DemoAdmin, "--issuer-url", "http://" + issuer}, func(string) string { return "" }, &tok, &tok)
		return strings.TrimSpace(tok.String()), err
	})()
	if err != nil {
		t.Fatal(err)
	}
	adminProducts := productv1connect.NewProductServiceClient(http.DefaultClient, "http://"+products, connect.WithInterceptors(shoptest.Bearer(admin)))

	runBrowser(t, "http://"+page, strings.ToLower(devstack.DemoPromoCode), chromium, "storefront.png", func(runnerID, walkerID string) {
		if !strings.Contains(pasted, runnerID) {
			t.Errorf("the printed price change is for another product than the one in the cart (%s):\n%s", runnerID, pasted)
		}
		t.Logf("pasting:\n%s", pasted)
		shoptest.RunShell(t, pasted)
		if _, err := adminProducts.DeleteProduct(ctx, connect.NewRequest(&productv1.DeleteProductRequest{Id: walkerID})); err != nil {
			t.Errorf("admin delete: %v", err)
		}
	})
}
