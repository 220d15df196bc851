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

// FuzzLoadUserMap: any file either fails or yields subjects of 1 to 255
// characters under lower-case emails and ids, never panicking.
func FuzzLoadUserMap(f *testing.F) {
	f.Add("Alice@Example.com,sub-alice\n42,sub-42\n")
	f.Add("# comment\n\"quoted, email\",x\n")
	f.Fuzz(func(t *testing.T, content string) {
		path := filepath.Join(t.TempDir(), "users.csv")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		byEmail, byID, err := LoadUserMap(path)
		if err != nil {
			return
		}
		for k, sub := range byEmail {
			if k != strings.ToLower(k) || sub == "" || len(sub) > 255 {
				t.Errorf("email %q → subject %q", k, sub)
			}
		}
		for id, sub := range byID {
			if sub == "" || len(sub) > 255 {
				t.Errorf("id %d → subject %q", id, sub)
			}
		}
	})
}
