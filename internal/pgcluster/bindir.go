package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// DebianBinGlob is where Debian and Ubuntu install one directory of server binaries per major version.
const DebianBinGlob = "/usr/lib/postgresql/*/bin"

// ErrNoBinaries tells how to get the server binaries; every lookup failure wraps it.
var ErrNoBinaries = errors.New("install the PostgreSQL server (apt-get install postgresql) " +
	"or set PG_BIN to the directory holding initdb and postgres")

// FindBinDir returns the directory holding initdb and postgres: pgBin (PG_BIN) if set, else the
// highest version matching versionGlob, else `pg_config --bindir`, else the directory of initdb
// on searchPath (PATH). pg_config and initdb are looked up on searchPath only.
func FindBinDir(pgBin, versionGlob, searchPath string) (string, error) {
	if pgBin != "" {
		if !hasServerBinaries(pgBin) {
			return "", fmt.Errorf("pgcluster: PG_BIN=%q holds no initdb and postgres: %w", pgBin, ErrNoBinaries)
		}
		return pgBin, nil
	}
	if dir := highestVersion(versionGlob); dir != "" {
		return dir, nil
	}
	if pgConfig := lookPath("pg_config", searchPath); pgConfig != "" {
		if out, err := exec.Command(pgConfig, "--bindir").Output(); err == nil {
			if dir := strings.TrimSpace(string(out)); hasServerBinaries(dir) {
				return dir, nil
			}
		}
	}
	if initdb := lookPath("initdb", searchPath); initdb != "" && hasServerBinaries(filepath.Dir(initdb)) {
		return filepath.Dir(initdb), nil
	}
	return "", fmt.Errorf("pgcluster: no PostgreSQL server binaries in PG_BIN, %s, pg_config --bindir or PATH: %w", versionGlob, ErrNoBinaries)
}

// highestVersion returns the match of glob (…/<version>/bin) with the highest numeric version
// that holds the server binaries, or "" if none does.
func highestVersion(glob string) string {
	matches, _ := filepath.Glob(glob)
	best, bestVersion := "", -1.0
	for _, dir := range matches {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64) // "15", "9.6"
		if err == nil && v > bestVersion && hasServerBinaries(dir) {
			best, bestVersion = dir, v
		}
	}
	return best
}

func hasServerBinaries(dir string) bool {
	return isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres"))
}

// lookPath is exec.LookPath on an explicit search path.
func lookPath(name, searchPath string) string {
	for _, dir := range filepath.SplitList(searchPath) {
		if p := filepath.Join(dir, name); dir != "" && isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
