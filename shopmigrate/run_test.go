package shopmigrate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs Run with args and env, returning stdout and the error.
func runCLI(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr strings.Builder
	err := Run(t.Context(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	return stdout.String() + stderr.String(), err
}

// TestRunCommandLine drives the command as a team would, configured by the
// environment: --help, a dry run, the split, and a rerun; each writes its
// Markdown and JSON reports.
func TestRunCommandLine(t *testing.T) {
	t.Parallel()
	b := setup(t, SmallSize)
	dir := t.TempDir()
	env := map[string]string{
		"LEGACY_URL": b.cfg.LegacyURL, "PRODUCT_DATABASE_URL": b.cfg.ProductURL, "CART_DATABASE_URL": b.cfg.CartURL,
		"REPORT_DIR": dir, "USER_RULE": "email",
	}
	out, err := runCLI(t, env, "--help")
	if err != nil || !strings.Contains(out, "shopmigrate split") {
		t.Errorf("--help: %v\n%s", err, out)
	}
	out, err = runCLI(t, env, "split", "--help")
	if err != nil || !strings.Contains(out, "(env LEGACY_URL)") || !strings.Contains(out, "-round-fractions") {
		t.Errorf("split --help: %v\n%s", err, out)
	}
	if _, err := runCLI(t, nil, "split"); err == nil || !strings.Contains(err.Error(), "--legacy-url") {
		t.Errorf("split without URLs: %v; want an error naming the flags", err)
	}
	if _, err := runCLI(t, env, "merge"); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: %v", err)
	}

	out, err = runCLI(t, env, "split", "--dry-run")
	if err != nil || !strings.Contains(out, "Dry run of pass 1") || !strings.Contains(out, "precision") {
		t.Fatalf("split --dry-run: %v\n%s", err, out)
	}
	if _, err := runCLI(t, env, "split"); err == nil {
		t.Fatal("split with fractions of a cent and no --round-fractions succeeded")
	}
	env["ROUND_FRACTIONS"] = "true"
	if out, err = runCLI(t, env, "split"); err != nil || !strings.Contains(out, "Verified: counts and checksums match") {
		t.Fatalf("split: %v\n%s", err, out)
	}
	if out, err = runCLI(t, env, "split"); err != nil || !strings.Contains(out, "Nothing changed") {
		t.Fatalf("split again: %v\n%s", err, out)
	}
	jsons, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	mds, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	if len(jsons) != 4 || len(mds) != 4 {
		t.Fatalf("reports written: %d JSON, %d Markdown; want 4 of each (dry run, refused, split, rerun)", len(jsons), len(mds))
	}
	var last *Report
	for _, path := range jsons {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var rep Report
		if err := json.Unmarshal(raw, &rep); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if last == nil || rep.Started.After(last.Started) {
			last = &rep
		}
	}
	if last.Changed != 0 || !last.Verified || len(last.Tables) != len(tableChecks) {
		t.Errorf("the last JSON report: changed %d, verified %t, %d tables", last.Changed, last.Verified, len(last.Tables))
	}

	out, err = runCLI(t, env, "inplace", "--dry-run")
	if err != nil || !strings.Contains(out, "Dry run: the migration ran and verified") {
		t.Errorf("inplace --dry-run: %v\n%s", err, out)
	}
}
