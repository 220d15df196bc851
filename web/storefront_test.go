package web_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/migrate"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
	"github.com/decoupledshop/shop/productsvc/migrations"
	"github.com/decoupledshop/shop/web"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var productSchema = pgtest.Schema{
	Name: "product",
	Role: "productsvc",
	Migrate: func(ctx context.Context, url string) error {
		return migrate.Up(ctx, url, migrations.FS)
	},
}

// e2eRequiredEnv makes a missing browser or node_modules fail the browser
// test instead of skipping it (set it in CI, which installs both).
const e2eRequiredEnv = "SHOP_E2E_REQUIRED"

// browserPrereqs returns the chromium path, or skips the test (fails it
// under SHOP_E2E_REQUIRED) when chromium, node or web/node_modules is
// missing.
func browserPrereqs(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	chromium := os.Getenv("CHROMIUM_PATH")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	var missing []string
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium+" (apt-get install chromium)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "web/node_modules (cd web && npm ci)")
	}
	if len(missing) > 0 {
		msg := "browser test needs " + strings.Join(missing, ", ")
		if os.Getenv(e2eRequiredEnv) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; set " + e2eRequiredEnv + "=1 to make this a failure")
	}
	return chromium
}

// stack is everything the page talks to, started for one test.
type stack struct {
	iss         *devissuer.Issuer
	pageURL     string // the page's origin, also the login redirect URI
	productsURL string
	cartURL     string
	promoCode   string // a code the cart service accepts
	admin       connect.Interceptor
	runner      *productv1.Product // "Trail runner", put in the cart, then its price changes
	walker      *productv1.Product // "City walker", put in the cart, then deleted
}

// startStack starts the issuer, productsvc (real main, CORS for the page),
// the cart service from startCart (which returns its URL and a valid promo
// code), the page, and seeds the catalog.
func startStack(t *testing.T, startCart func(*testing.T, *stack) (cartURL, promo string)) *stack {
	t.Helper()
	s := &stack{iss: shoptest.Issuer(t)}
	// The page's listener comes first: its origin goes into the services'
	// CORS lists and is the login redirect URI.
	pageLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.pageURL = "http://" + pageLn.Addr().String()
	s.productsURL = startProductsvc(t, s.iss, s.pageURL)
	s.admin = shoptest.Bearer(issuertest.UserToken(t, s.iss, shoptest.Admin))
	s.runner, s.walker = seedCatalog(t, s.productsURL, s.admin)
	s.cartURL, s.promoCode = startCart(t, s)

	pageSrv := &http.Server{Handler: web.Handler(web.Config{
		IssuerURL: s.iss.URL(), ProductsURL: s.productsURL, CartURL: s.cartURL, ClientID: devissuer.WebClientID, CartPollSeconds: 1,
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = pageSrv.Serve(pageLn) }()
	t.Cleanup(func() { pageSrv.Close() })
	return s
}

// runBrowser runs e2e/storefront.mjs against s; when the script is ready,
// the admin lowers the Trail runner's price from 89.99 to 79.99 and deletes
// the City walker, and the script must see both flagged on the open page
// (price changed, unavailable). The screenshot goes to
// test-artifacts/<screenshotName>.
func runBrowser(t *testing.T, s *stack, chromium, screenshotName string) {
	t.Helper()
	ctx := t.Context()
	adminProducts := productv1connect.NewProductServiceClient(shoptest.HTTPClient(), s.productsURL, connect.WithInterceptors(s.admin))
	screenshot := filepath.Join(shoptest.RepoRoot(t), "test-artifacts", screenshotName)
	os.Remove(screenshot)
	runCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, "node", "e2e/storefront.mjs")
	cmd.Env = append(os.Environ(),
		"STOREFRONT_URL="+s.pageURL+"/",
		"SHOP_USER="+shoptest.Alice, "SHOP_PASSWORD="+shoptest.Alice,
		"E2E_SEARCH=runner", "E2E_PRODUCT=Trail runner",
		"E2E_PROMO_CODE="+s.promoCode,
		"E2E_DOOMED_PRODUCT=City walker",
		"E2E_PRICE_CHANGE=stdin",
		"SCREENSHOT_PATH="+screenshot,
		"CHROMIUM_PATH="+chromium,
		"E2E_TIMEOUT_MS=20000",
	)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}

	var out strings.Builder
	changed := false
	scanner := bufio.NewScanner(stdout)
	for scanner.Scan() {
		line := scanner.Text()
		t.Log(line)
		out.WriteString(line + "\n")
		ids, ok := strings.CutPrefix(line, "READY_FOR_PRICE_CHANGE ")
		if !ok {
			continue
		}
		if want := s.runner.GetId() + " " + s.walker.GetId(); ids != want {
			t.Errorf("the script put products %s in the cart, want Trail runner and City walker %s", ids, want)
		}
		// While alice's page is open, the admin lowers one price and
		// deletes the other product.
		_, err := adminProducts.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{
			Product:    &productv1.Product{Id: s.runner.GetId(), Price: eur(7999)},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
		}))
		if err != nil {
			t.Errorf("admin price change: %v", err)
		}
		if _, err := adminProducts.DeleteProduct(ctx, connect.NewRequest(&productv1.DeleteProductRequest{Id: s.walker.GetId()})); err != nil {
			t.Errorf("admin delete: %v", err)
		}
		changed = true
		fmt.Fprintln(stdin, "€79.99")
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("storefront.mjs failed: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), stderr.String())
	}
	for _, want := range []string{"catalog reads used HTTP GET", "signed in as alice", "promo " + s.promoCode + " applied", "PRICE_CHANGE_SEEN", "UNAVAILABLE_SEEN", "logged out", "PASS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("script output lacks %q:\n%s", want, out.String())
		}
	}
	if !changed {
		t.Error("the script never asked for the price change")
	}
	png, err := os.ReadFile(screenshot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("screenshot %s: %v (want a PNG)", screenshot, err)
	}
}

// startProductsvc runs the real productsvc main with CORS for pageOrigin
// and returns its base URL.
func startProductsvc(t *testing.T, iss *devissuer.Issuer, pageOrigin string) string {
	t.Helper()
	addr := shoptest.FreeAddr(t)
	env := map[string]string{
		"ADDR":                 addr,
		"DATABASE_URL":         pgtest.NewDatabase(t, productSchema),
		"OIDC_ISSUER_URL":      iss.URL(),
		"DRAIN_DELAY":          "-1s", // no drain delay
		"CORS_ALLOWED_ORIGINS": pageOrigin,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- productsvc.Run(ctx, nil, func(k string) string { return env[k] }, io.Discard, t.Output())
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("productsvc: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("productsvc did not stop within 10s")
		}
	})
	base := "http://" + addr
	shoptest.WaitReady(t, base, 20*time.Second, done)
	return base
}

func eur(minor int64) *typev1.Money { return &typev1.Money{CurrencyCode: "EUR", AmountMinor: minor} }

// seedCatalog creates two categories and four products as admin and
// returns the "Trail runner" and the "City walker".
func seedCatalog(t *testing.T, productsURL string, admin connect.Interceptor) (runner, walker *productv1.Product) {
	t.Helper()
	ctx := t.Context()
	opts := connect.WithInterceptors(admin)
	categories := productv1connect.NewCategoryServiceClient(shoptest.HTTPClient(), productsURL, opts)
	products := productv1connect.NewProductServiceClient(shoptest.HTTPClient(), productsURL, opts)
	cat := func(name string) string {
		res, err := categories.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: name}))
		if err != nil {
			t.Fatalf("create category %s: %v", name, err)
		}
		return res.Msg.GetCategory().GetId()
	}
	shoes, outdoor := cat("Shoes"), cat("Outdoor")
	for _, p := range []*productv1.CreateProductRequest{
		{Sku: "RUN-42", Name: "Trail runner", Description: "Grippy soles for muddy paths.", CategoryId: shoes, Price: eur(8999)},
		{Sku: "RUN-7", Name: "Road runner", Description: "Light and fast on tarmac.", CategoryId: shoes, Price: eur(11950)},
		{Sku: "WALK-7", Name: "City walker", Description: "All-day comfort.", CategoryId: shoes, Price: eur(6500)},
		{Sku: "JKT-1", Name: "Rain jacket", Description: "Stays dry, packs small.", CategoryId: outdoor, Price: eur(14900)},
	} {
		res, err := products.CreateProduct(ctx, connect.NewRequest(p))
		if err != nil {
			t.Fatalf("create product %s: %v", p.GetSku(), err)
		}
		switch p.GetSku() {
		case "RUN-42":
			runner = res.Msg.GetProduct()
		case "WALK-7":
			walker = res.Msg.GetProduct()
		}
	}
	return runner, walker
}
