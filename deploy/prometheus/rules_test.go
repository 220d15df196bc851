package prometheus_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// promtool returns the promtool binary, or skips the test without it
// locally; in CI (CI=true or SHOP_E2E_REQUIRED=1) a missing promtool fails.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" || os.Getenv("SHOP_E2E_REQUIRED") == "1" {
		t.Fatal("promtool is not installed: apt-get install prometheus")
	}
	t.Skip("promtool is not installed (apt-get install prometheus); CI runs this test")
	return ""
}

func TestRulesAreValid(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(promtool(t), "check", "rules", "shop.rules.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

func TestRulesFireWhenTheyShould(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(promtool(t), "test", "rules", "shop.rules.test.yml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
