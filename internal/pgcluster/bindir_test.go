package pgcluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindBinDir(t *testing.T) {
	t.Parallel()
	t.Run("PG_BIN without binaries fails", func(t *testing.T) {
		_, err := FindBinDir(t.TempDir(), DebianBinGlob, os.Getenv("PATH"))
		wantInstallHint(t, err)
	})
	t.Run("nothing anywhere fails", func(t *testing.T) {
		_, err := FindBinDir("", filepath.Join(t.TempDir(), "*", "bin"), "")
		wantInstallHint(t, err)
	})
	t.Run("PG_BIN comes first", func(t *testing.T) {
		root := t.TempDir()
		pgBin := fakeBinDir(t, filepath.Join(root, "mine"))
		fakeBinDir(t, filepath.Join(root, "16", "bin"))
		got, err := FindBinDir(pgBin, filepath.Join(root, "*", "bin"), "")
		if err != nil || got != pgBin {
			t.Fatalf("got %q, %v; want %q", got, err, pgBin)
		}
	})
	t.Run("highest complete version wins", func(t *testing.T) {
		root := t.TempDir()
		fakeBinDir(t, filepath.Join(root, "9.6", "bin"))
		want := fakeBinDir(t, filepath.Join(root, "15", "bin"))
		fakeBinDir(t, filepath.Join(root, "10", "bin"))
		if err := os.MkdirAll(filepath.Join(root, "16", "bin"), 0o755); err != nil { // client only
			t.Fatal(err)
		}
		got, err := FindBinDir("", filepath.Join(root, "*", "bin"), "")
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	})
	t.Run("PATH is the last resort", func(t *testing.T) {
		want := fakeBinDir(t, t.TempDir())
		got, err := FindBinDir("", filepath.Join(t.TempDir(), "*", "bin"), "/nonexistent"+string(filepath.ListSeparator)+want)
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	})
}

// fakeBinDir creates dir holding executables named initdb and postgres.
func fakeBinDir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"initdb", "postgres"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// wantInstallHint fails unless err tells how to install PostgreSQL.
func wantInstallHint(t *testing.T, err error) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Fatalf("got error %v, want one naming apt-get install postgresql", err)
	}
}
