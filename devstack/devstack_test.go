package devstack_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/devstack"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// syncBuffer is a bytes.Buffer safe for the stack's writer goroutine and
// the test's reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// stackAddrs are the loopback addresses one stack listens on.
type stackAddrs struct {
	issuer, products, cart, web          string
	productsAdmin, cartAdmin, prometheus string
}

func freeAddrs(t *testing.T) stackAddrs {
	f := func() string { return shoptest.FreeAddr(t) }
	return stackAddrs{f(), f(), f(), f(), f(), f(), f()}
}

// args runs the stack on a's addresses, without Prometheus (see
// withPrometheus).
func (a stackAddrs) args(dataDir string) []string {
	return []string{"--data-dir", dataDir, "--issuer-addr", a.issuer, "--products-addr", a.products, "--cart-addr", a.cart, "--web-addr", a.web,
		"--products-admin-addr", a.productsAdmin, "--cart-admin-addr", a.cartAdmin, "--prometheus-addr", a.prometheus, "--prometheus=false"}
}

// running is a stack started by runStack.
type running struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned; err is set by then
	err    error
}

// runStack runs the stack in the background until stop is called (or the
// test ends).
func runStack(t *testing.T, args []string, stdout io.Writer) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = devstack.Run(ctx, args, func(string) string { return "" }, stdout, stdout)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the stack like Ctrl-C and returns Run's error.
func (r *running) stop(t *testing.T) error {
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(30 * time.Second):
		t.Fatal("the stack did not stop within 30s of Ctrl-C")
		return nil
	}
}

// waitFor polls until out contains want, or fails.
func (r *running) waitFor(t *testing.T, out *syncBuffer, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(out.String(), want) {
		select {
		case <-r.done:
			t.Fatalf("the stack exited early: %v\noutput:\n%s", r.err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %v; output:\n%s", want, timeout, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dataDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/tmp", "shopdev-test-")
	if err == nil {
		err = os.Chmod(dir, 0o755) // as root, the postgres user must reach the cluster inside
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestStackRunsSeedsAndRestarts runs the whole stack on fresh ports with a
// fresh data directory, checks the seeded catalog and the token command,
// stops it like Ctrl-C, and starts it again on the same data.
func TestStackRunsSeedsAndRestarts(t *testing.T) {
	t.Parallel()
	dir, addrs := dataDir(t), freeAddrs(t)
	var out syncBuffer
	stack := runStack(t, addrs.args(dir), &out)
	stack.waitFor(t, &out, "shop is running", 2*time.Minute)
	for _, want := range []string{"http://" + addrs.web, "http://" + addrs.products, "shopdev token --user alice", "curl"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("welcome text lacks %q:\n%s", want, out.String())
		}
	}
	products := productv1connect.NewProductServiceClient(http.DefaultClient, "http://"+addrs.products)
	list, err := products.ListProducts(context.Background(), connect.NewRequest(&productv1.ListProductsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	seeded := len(list.Msg.Products)
	if seeded == 0 {
		t.Fatal("the catalog is empty after the first start; want demo products")
	}

	var tokenOut, tokenErr bytes.Buffer
	if err := devstack.Run(context.Background(), []string{"token", "--user", "alice", "--issuer-url", "http://" + addrs.issuer}, func(string) string { return "" }, &tokenOut, &tokenErr); err != nil {
		t.Fatalf("shopdev token: %v", err)
	}
	tok := strings.TrimSpace(tokenOut.String())
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("shopdev token printed %q, want a JWT", tok)
	}
	if err := stack.stop(t); err != nil {
		t.Fatalf("Ctrl-C: Run returned %v, want nil", err)
	}

	// Second run, same data: up again, nothing seeded twice.
	start := time.Now()
	var out2 syncBuffer
	stack2 := runStack(t, addrs.args(dir), &out2)
	stack2.waitFor(t, &out2, "shop is running", time.Minute)
	t.Logf("second start took %v", time.Since(start).Round(time.Millisecond))
	list, err = products.ListProducts(context.Background(), connect.NewRequest(&productv1.ListProductsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Msg.Products) != seeded {
		t.Fatalf("after a restart the catalog has %d products, want the %d seeded once", len(list.Msg.Products), seeded)
	}
	// The issuer kept its keys in the data directory: a token from before
	// the restart still works.
	get := connect.NewRequest(&cartv1.GetCartRequest{})
	get.Header().Set("Authorization", "Bearer "+tok)
	if _, err := cartv1connect.NewCartServiceClient(http.DefaultClient, "http://"+addrs.cart).GetCart(context.Background(), get); err != nil {
		t.Fatalf("alice's token from before the restart: GetCart = %v, want it accepted", err)
	}
	if err := stack2.stop(t); err != nil {
		t.Fatalf("second Ctrl-C: %v", err)
	}
}

func TestBusyPortIsOneClearLine(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addrs := freeAddrs(t)
	addrs.products = ln.Addr().String()
	err = devstack.Run(context.Background(), addrs.args(dataDir(t)), func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--products-addr") || !strings.Contains(err.Error(), "busy") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("busy port: %v; want one line naming --products-addr as busy", err)
	}
}

func TestMissingPostgresIsOneClearLine(t *testing.T) {
	t.Parallel()
	getenv := func(k string) string {
		if k == "PG_BIN" {
			return "/nonexistent"
		}
		return ""
	}
	err := devstack.Run(context.Background(), freeAddrs(t).args(dataDir(t)), getenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "apt-get install postgresql") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("missing binaries: %v; want one line naming apt-get install postgresql", err)
	}
}

func TestTokenHelpNamesTheVariablesItReads(t *testing.T) {
	t.Parallel()
	var help bytes.Buffer
	if err := devstack.Run(context.Background(), []string{"token", "--help"}, func(string) string { return "" }, io.Discard, &help); err != nil {
		t.Fatalf("token --help: %v", err)
	}
	if !strings.Contains(help.String(), "(env SHOPDEV_USER)") || strings.Contains(help.String(), "(env USER)") {
		t.Errorf("token --help should name SHOPDEV_USER, the variable it reads:\n%s", help.String())
	}
	// And it does read it.
	env := map[string]string{"SHOPDEV_USER": "mallory"}
	err := devstack.Run(context.Background(), []string{"token"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `"mallory"`) {
		t.Errorf("SHOPDEV_USER=mallory: %v; want the user refused by name", err)
	}
}

func TestTokenWithoutAStackSaysWhatToDo(t *testing.T) {
	t.Parallel()
	err := devstack.Run(context.Background(), []string{"token", "--user", "alice", "--issuer-url", "http://" + shoptest.FreeAddr(t)}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "go run ./cmd/shopdev") {
		t.Fatalf("token without a stack: %v; want a hint to start it", err)
	}
	err = devstack.Run(context.Background(), []string{"token", "--user", "mallory"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "alice, bob or admin") {
		t.Fatalf("unknown user: %v", err)
	}
}

// TestREADMEClientsAgainstTheStack runs the README's cart curl lines, the Go
// client example and (in CI, where the pinned tools are built) the buf curl
// lines verbatim against a running stack.
func TestREADMEClientsAgainstTheStack(t *testing.T) {
	t.Parallel()
	addrs, dir := freeAddrs(t), dataDir(t)
	var out syncBuffer
	stack := runStack(t, withPrometheus(t, addrs.args(dir)), &out)
	stack.waitFor(t, &out, "shop is running", 2*time.Minute)
	env := []string{"ISSUER=http://" + addrs.issuer, "PRODUCTS=http://" + addrs.products, "CART=http://" + addrs.cart}
	before := scrapeStack(t, addrs)

	got := shoptest.RunShell(t, shoptest.ReadmeBlock(t, "cart-curl"), env...)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 6 {
		t.Fatalf("the cart walkthrough printed %d lines, want 6:\n%s", len(lines), got)
	}
	aliceCart, bobCart := lines[2], lines[4]
	for _, want := range []string{`"quantity":2`, `"code":"WELCOME10"`, `"amountMinor":"16198"`} {
		if !strings.Contains(strings.ReplaceAll(aliceCart, " ", ""), want) {
			t.Errorf("alice's cart lacks %s: %s", want, aliceCart)
		}
	}
	if strings.Contains(bobCart, "items") || strings.Contains(bobCart, "WELCOME10") {
		t.Errorf("bob sees alice's cart: %s", bobCart)
	}
	if want := `{"unitPrice":{"currencyCode":"EUR","amountMinor":"7999"},"addedUnitPrice":{"currencyCode":"EUR","amountMinor":"8999"},"priceChanged":true}`; lines[5] != want {
		t.Errorf("after the admin's price change alice's line is\n%s\nwant\n%s", lines[5], want)
	}

	example := shoptest.RunShell(t, `go run ./examples/goclient --user bob --query beanie --issuer-url "$ISSUER" --products-url "$PRODUCTS" --cart-url "$CART"`, env...)
	if !strings.Contains(example, "cart: 1 × Red wool beanie") {
		t.Errorf("the Go example printed:\n%s", example)
	}

	t.Run("metrics moved", func(t *testing.T) { checkMetricsMoved(t, before, scrapeStack(t, addrs)) })
	t.Run("rules and dashboard name exported series", func(t *testing.T) { checkQueriesNameExportedSeries(t, scrapeStack(t, addrs)) })
	t.Run("prometheus", func(t *testing.T) { checkPrometheus(t, addrs, out.String()) })
	t.Run("no secrets in logs", func(t *testing.T) { checkLogsHoldNoSecrets(t, dir) })

	if os.Getenv("SHOP_E2E_REQUIRED") != "1" {
		t.Log("buf curl lines not run: set SHOP_E2E_REQUIRED=1 (CI does) once the pinned tools are built")
		return
	}
	reflected := shoptest.RunShell(t, shoptest.ReadmeBlock(t, "buf-curl"), env...)
	if !strings.Contains(reflected, "shop.product.v1.ProductService/ListProducts") || !strings.Contains(reflected, `"products"`) {
		t.Errorf("buf curl through reflection printed:\n%s", reflected)
	}
}
