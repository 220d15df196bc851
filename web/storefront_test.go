package web_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/decoupledshop/shop/internal/shoptest"
)

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

// runBrowser runs e2e/storefront.mjs against the page at pageURL: alice
// logs in, puts the Trail runner and the City walker in her cart and applies
// promo. When the script is ready, change (the admin's move) must lower the
// runner's price to 79.99 and delete the walker; the open page must then
// flag both (price changed, unavailable). The screenshot goes to
// test-artifacts/<screenshotName>.
func runBrowser(t *testing.T, pageURL, promo, chromium, screenshotName string, change func(runnerID, walkerID string)) {
	t.Helper()
	ctx := t.Context()
	screenshot := filepath.Join(shoptest.RepoRoot(t), "test-artifacts", screenshotName)
	os.Remove(screenshot)
	runCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, "node", "e2e/storefront.mjs")
	cmd.Env = append(os.Environ(),
		"STOREFRONT_URL="+pageURL+"/",
		"SHOP_USER="+shoptest.Alice, "SHOP_PASSWORD="+shoptest.Alice,
		"E2E_SEARCH=runner", "E2E_PRODUCT=Trail runner",
		"E2E_PROMO_CODE="+promo,
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
		runnerID, walkerID, _ := strings.Cut(ids, " ")
		change(runnerID, walkerID)
		changed = true
		fmt.Fprintln(stdin, "€79.99")
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("storefront.mjs failed: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), stderr.String())
	}
	for _, want := range []string{"catalog reads used HTTP GET", "signed in as alice", "promo " + promo + " applied", "PRICE_CHANGE_SEEN", "UNAVAILABLE_SEEN", "logged out", "PASS"} {
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
