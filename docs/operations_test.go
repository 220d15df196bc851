package docs_test

import (
	"bytes"
	"context"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decoupledshop/shop/cartsvc"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func operations(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("operations.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(doc)
}

// block returns the fenced block of the given language after the line
// "<!-- test: name -->".
func block(t *testing.T, doc, name, lang string) string {
	t.Helper()
	marker := "<!-- test: " + name + " -->"
	_, rest, ok := strings.Cut(doc, marker)
	if !ok {
		t.Fatalf("operations.md has no %q", marker)
	}
	_, rest, ok = strings.Cut(rest, "```"+lang+"\n")
	if !ok {
		t.Fatalf("operations.md has no ```%s block after %q", lang, marker)
	}
	b, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("operations.md's block after %q is not closed", marker)
	}
	return b
}

// psql finds PostgreSQL's client, or skips.
func psql(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("psql"); err == nil {
		return p
	}
	if ps, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql"); len(ps) > 0 {
		return ps[len(ps)-1]
	}
	t.Skip("psql is not installed (apt-get install postgresql-client)")
	return ""
}

// The set-up SQL, run as the superuser the way the doc says, leaves
// databases that each service's role may migrate and the other may not
// enter; then the services, configured as the doc configures them, pass the
// doc's price change from productsvc to the cart (its step 4, verbatim).
func TestWalkthroughFromAnEmptyPostgreSQL(t *testing.T) {
	if os.Getenv("TEST_DATABASE_URL") != "" {
		t.Skip("creates the roles productsvc and cartsvc: needs a throwaway cluster, not TEST_DATABASE_URL")
	}
	as := runSetUpSQL(t)
	migrateAsOwners(t, as)
	if testing.Short() {
		return
	}
	for _, tool := range []string{"curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed", tool)
			}
			t.Skipf("%s is not installed: step 4 not run", tool)
		}
	}
	runPriceChange(t, as)
}

// runSetUpSQL runs the doc's set-up SQL as the superuser and returns the
// URL of a database as a role with its password.
func runSetUpSQL(t *testing.T) (as func(role, password, db string) string) {
	sql := block(t, operations(t), "ops-sql", "sql")
	super := pgtest.SuperuserURL(t)
	cmd := exec.Command(psql(t), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", super, "-f", "-")
	cmd.Stdin = strings.NewReader(sql)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the set-up SQL fails: %v\n%s", err, out.String())
	}
	return func(role, password, db string) string {
		u, err := url.Parse(super)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(role, password)
		u.Path = "/" + db
		return u.String()
	}
}

// migrateAsOwners checks that each service's role may migrate its
// database and that cartsvc's may not enter productsvc's.
func migrateAsOwners(t *testing.T, as func(role, password, db string) string) {
	ctx := context.Background()
	// Each service migrates its database as its role, the way its init
	// container does on Kubernetes (--migrate-only: then it exits, nil).
	env := map[string]string{
		"PRODUCT_URL": "http://127.0.0.1:8081", "ADMIN_ADDR": "", "LOG_LEVEL": "warn",
	}
	for _, svc := range []struct {
		name string
		run  func(context.Context, []string, func(string) string, io.Writer, io.Writer) error
		url  string
	}{
		{"productsvc", productsvc.Run, as("productsvc", "product-secret", "product")},
		{"cartsvc", cartsvc.Run, as("cartsvc", "cart-secret", "cart")},
	} {
		var logs bytes.Buffer
		if err := svc.run(ctx, []string{"--migrate-only", "--database-url", svc.url}, func(k string) string { return env[k] }, &logs, &logs); err != nil {
			t.Errorf("%s --migrate-only after the set-up SQL: %v\n%s", svc.name, err, logs.String())
		}
	}
	for _, db := range []struct{ url, table string }{
		{as("productsvc", "product-secret", "product"), "products"},
		{as("cartsvc", "cart-secret", "cart"), "carts"},
	} {
		conn, err := pgx.Connect(ctx, db.url)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+db.table).Scan(&n); err != nil {
			t.Errorf("after --migrate-only, %s: %v", db.table, err)
		}
		conn.Close(ctx)
	}
	conn, err := pgx.Connect(ctx, as("cartsvc", "cart-secret", "product"))
	if err == nil {
		conn.Close(ctx)
		t.Error("cartsvc's role may connect to productsvc's database; want each database its owner's only")
	} else if !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("cartsvc connecting to product: %v; want permission denied", err)
	}
}

// runPriceChange runs the services as the doc configures them (its step
// 3, on free ports) and checks that its step 4, verbatim, passes a price
// change from productsvc to the cart.
func runPriceChange(t *testing.T, as func(role, password, db string) string) {
	iss := issuertest.New(t, devissuer.DemoConfig())
	products, cart := shoptest.FreeAddr(t), shoptest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	serve := func(name string, run func(context.Context, []string, func(string) string, io.Writer, io.Writer) error, env map[string]string, args ...string) {
		done := make(chan error, 1)
		go func() { done <- run(ctx, args, func(k string) string { return env[k] }, io.Discard, t.Output()) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
		shoptest.WaitReady(t, "http://"+env["ADDR"], time.Minute, done)
	}
	// Step 3, on free ports.
	serve("productsvc", productsvc.Run, map[string]string{
		"OIDC_ISSUER_URL": iss.URL(), "DATABASE_URL": as("productsvc", "product-secret", "product"),
		"RELAY_CLIENT_ID": devissuer.DemoRelayClient, "RELAY_CLIENT_SECRET": devissuer.DemoRelaySecret,
		"ADDR": products, "ADMIN_ADDR": "", "LOG_LEVEL": "warn", "DRAIN_DELAY": "0s",
	}, "--subscribers", "cartsvc=http://"+cart)
	serve("cartsvc", cartsvc.Run, map[string]string{
		"OIDC_ISSUER_URL": iss.URL(), "DATABASE_URL": as("cartsvc", "cart-secret", "cart"),
		"ADDR": cart, "ADMIN_ADDR": "", "LOG_LEVEL": "warn", "DRAIN_DELAY": "0s",
	}, "--product-url", "http://"+products)

	printed := shoptest.RunShell(t, block(t, operations(t), "ops-event", "sh"),
		"ISSUER="+iss.URL(), "PRODUCTS=http://"+products, "CART=http://"+cart)
	if want := `{"unitPrice":{"currencyCode":"EUR","amountMinor":"7999"},"priceChanged":true}`; strings.TrimSpace(printed) != want {
		t.Errorf("step 4 printed %q, want %s: the price change did not reach the cart", printed, want)
	}
}

// flagsIn returns the --flags the text names.
func flagsIn(text string) []string {
	var out []string
	for _, m := range regexp.MustCompile("--([a-z][a-z0-9-]+)").FindAllStringSubmatch(text, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

// Every flag operations.md names is one of the services' flags (their
// --help), or one of the few other commands' flags it shows.
func TestEveryFlagNamedIsReal(t *testing.T) {
	t.Parallel()
	var help bytes.Buffer
	ctx := context.Background()
	if err := productsvc.Run(ctx, []string{"--help"}, func(string) string { return "" }, &help, &help); err != nil {
		t.Fatal(err)
	}
	if err := cartsvc.Run(ctx, []string{"--help"}, func(string) string { return "" }, &help, &help); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(help.String(), -1) {
		known[f[1]] = true
	}
	if !known["database-url"] || !known["subscribers"] || !known["product-url"] {
		t.Fatalf("could not read the services' flags from --help:\n%s", help.String())
	}
	// Not the services': devissuer's key file, docker's and curl's.
	for _, other := range []string{"help", "key-file", "build-arg", "data-urlencode", "get"} {
		known[other] = true
	}
	for _, f := range flagsIn(operations(t)) {
		if !known[f] {
			t.Errorf("operations.md names --%s, which neither service has (see --help)", f)
		}
	}
}
