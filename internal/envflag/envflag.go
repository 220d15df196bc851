// Package envflag lets every command-line flag fall back to an environment
// variable, so services can be configured by flags locally and by
// environment in deployments.
package envflag

import (
	"flag"
	"fmt"
	"strings"
)

// EnvName is the environment variable that backs flag name: the name in upper
// case with '-' replaced by '_' (e.g. "database-url" → "DATABASE_URL").
func EnvName(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Parse parses args into fs, then sets every flag that was not given on the
// command line from its environment variable (see EnvName), when that
// variable is non-empty. Flags win over the environment; the environment wins
// over defaults. An invalid environment value is an error naming the
// variable. Parse also appends "(env NAME)" to each flag's usage so --help
// documents the fallback.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	return ParsePrefixed(fs, args, "", getenv)
}

// ParsePrefixed is Parse with every variable name prefixed (prefix
// "SHOPDEV_": --user falls back to SHOPDEV_USER), and --help saying so.
func ParsePrefixed(fs *flag.FlagSet, args []string, prefix string, getenv func(string) string) error {
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(f.Usage, "(env ") {
			f.Usage += fmt.Sprintf(" (env %s%s)", prefix, EnvName(f.Name))
		}
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		env := prefix + EnvName(f.Name)
		if v := getenv(env); v != "" {
			if setErr := fs.Set(f.Name, v); setErr != nil {
				err = fmt.Errorf("environment variable %s: %w", env, setErr)
			}
		}
	})
	return err
}
