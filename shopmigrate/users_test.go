package shopmigrate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadUserMap reads emails (any case) and legacy ids, skips comments,
// and refuses a key given twice or a line without a subject, naming the
// line.
func TestLoadUserMap(t *testing.T) {
	t.Parallel()
	write := func(content string) string {
		path := filepath.Join(t.TempDir(), "users.csv")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	byEmail, byID, err := LoadUserMap(write("# legacy user, OIDC subject\nAlice@Example.com,sub-alice\n42, sub-42\n"))
	if err != nil {
		t.Fatal(err)
	}
	if byEmail["alice@example.com"] != "sub-alice" || byID[42] != "sub-42" || len(byEmail)+len(byID) != 2 {
		t.Errorf("LoadUserMap = %v, %v; want alice@example.com → sub-alice and 42 → sub-42", byEmail, byID)
	}
	for content, want := range map[string]string{
		"a@example.com,one\nA@example.com,two\n": ":2: email a@example.com mapped twice",
		"7,one\n7,two\n":                         ":2: user id 7 mapped twice",
		"a@example.com,\n":                       ":1: want",
		"a@example.com\n":                        "wrong number of fields",
	} {
		if _, _, err := LoadUserMap(write(content)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadUserMap(%q) = %v; want an error with %q", content, err, want)
		}
	}
}
