package envflag

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func newSet() (*flag.FlagSet, *string, *time.Duration) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	url := fs.String("database-url", "default-url", "database URL")
	timeout := fs.Duration("call-timeout", time.Second, "timeout")
	return fs, url, timeout
}

func TestParsePrecedence(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": "from-env", "CALL_TIMEOUT": "3s"}
	fs, url, timeout := newSet()
	if err := Parse(fs, []string{"--call-timeout=5s"}, func(k string) string { return env[k] }); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if *url != "from-env" {
		t.Errorf("database-url = %q, want the environment's value %q", *url, "from-env")
	}
	if *timeout != 5*time.Second {
		t.Errorf("call-timeout = %v, want the flag's 5s to win over the environment's 3s", *timeout)
	}
}

func TestParseKeepsDefaultsWithoutEnv(t *testing.T) {
	t.Parallel()
	fs, url, _ := newSet()
	if err := Parse(fs, nil, func(string) string { return "" }); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if *url != "default-url" {
		t.Errorf("database-url = %q, want the default", *url)
	}
	if u := fs.Lookup("database-url").Usage; !strings.Contains(u, "(env DATABASE_URL)") {
		t.Errorf("usage %q does not document the environment variable", u)
	}
}

func TestParseRejectsInvalidEnv(t *testing.T) {
	t.Parallel()
	fs, _, _ := newSet()
	err := Parse(fs, nil, func(k string) string {
		if k == "CALL_TIMEOUT" {
			return "soon"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "CALL_TIMEOUT") {
		t.Fatalf("Parse error = %v, want one naming CALL_TIMEOUT", err)
	}
}

func TestParsePrefixedReadsAndDocumentsPrefixedNames(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SHOPDEV_DATABASE_URL": "prefixed", "DATABASE_URL": "bare"}
	fs, url, _ := newSet()
	if err := ParsePrefixed(fs, nil, "SHOPDEV_", func(k string) string { return env[k] }); err != nil {
		t.Fatalf("ParsePrefixed: %v", err)
	}
	if *url != "prefixed" {
		t.Errorf("database-url = %q, want SHOPDEV_DATABASE_URL's %q", *url, "prefixed")
	}
	if usage := fs.Lookup("database-url").Usage; !strings.HasSuffix(usage, "(env SHOPDEV_DATABASE_URL)") {
		t.Errorf("usage %q should name SHOPDEV_DATABASE_URL", usage)
	}
}
