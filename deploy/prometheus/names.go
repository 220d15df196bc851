package prometheus

import (
	"regexp"
	"slices"
	"strings"
)

var (
	// A label matcher list, a string, a range or a grouping clause:
	// nothing in them names a series.
	matchers = regexp.MustCompile(`\{[^}]*\}|"[^"]*"|\[[^\]]*\]|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	// An identifier, and whether a '(' follows it (a function call).
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\s*\(?`)
	keywords   = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// MetricNames returns the series names a PromQL expression selects (sorted,
// each once): the identifiers that are not functions, keywords, labels or
// numbers. It understands the expressions of this repository's rules and
// dashboards, not all of PromQL.
func MetricNames(expr string) []string {
	var names []string
	for _, m := range identifier.FindAllString(matchers.ReplaceAllString(expr, " "), -1) {
		if strings.HasSuffix(m, "(") {
			continue
		}
		if m = strings.TrimSpace(m); slices.Contains(keywords, strings.ToLower(m)) {
			continue
		}
		if !slices.Contains(names, m) {
			names = append(names, m)
		}
	}
	slices.Sort(names)
	return names
}

// RuleExpressions returns the expr of every rule in Rules.
func RuleExpressions() []string {
	var exprs []string
	lines := strings.Split(string(Rules), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		rest, ok := strings.CutPrefix(line, "expr:")
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		if rest != "|" {
			exprs = append(exprs, rest)
			continue
		}
		// A block: the more-indented lines that follow.
		indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
		var block []string
		for i+1 < len(lines) {
			next := lines[i+1]
			if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
				break
			}
			block = append(block, strings.TrimSpace(next))
			i++
		}
		exprs = append(exprs, strings.TrimSpace(strings.Join(block, " ")))
	}
	return exprs
}
