package shopmigrate

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Report is what a run planned, found and did. Run writes it as a Markdown
// file for people and a JSON file for programs, side by side.
type Report struct {
	// Mode is "split" or "inplace".
	Mode string `json:"mode"`
	// DryRun is true when nothing was written.
	DryRun bool `json:"dryRun"`
	// Pass is the split's pass: 1 is the first copy, each later one a
	// catch-up copying only rows changed since the pass before.
	Pass int `json:"pass,omitempty"`
	// Resumed is true when the run went on with a pass a previous run left
	// unfinished.
	Resumed  bool      `json:"resumed,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Seconds is how long the run took, all of it; for a catch-up pass run
	// with legacy writes frozen, it is the freeze the cut-over needs.
	Seconds float64 `json:"seconds"`
	// ChecksSeconds, CopySeconds and VerifySeconds split Seconds into the
	// checks for problems, the copy and the verification (split).
	ChecksSeconds float64 `json:"checksSeconds,omitempty"`
	CopySeconds   float64 `json:"copySeconds,omitempty"`
	VerifySeconds float64 `json:"verifySeconds,omitempty"`
	// Tables has one entry per table: rows and checksums on both sides,
	// rows written, and speed.
	Tables []TableReport `json:"tables"`
	// Steps lists what an in-place run did, in order.
	Steps []string `json:"steps,omitempty"`
	// Orphans are rows whose parent is gone (soft-deleted) in the legacy
	// database, and where they were carried.
	Orphans []Orphan `json:"orphans,omitempty"`
	// Problems are every problem found, blocking or not, each with the
	// resolution chosen for it.
	Problems []Problem `json:"problems"`
	// Changed counts the rows inserted, updated or deleted; 0 means the
	// run changed nothing.
	Changed int64 `json:"changed"`
	// Verified is true when every table's count and checksum matched.
	Verified bool `json:"verified"`
	// Outcome says in one sentence how the run ended.
	Outcome string `json:"outcome"`
}

// TableReport is one table's line in a Report.
type TableReport struct {
	// Table is the target table (split) or the legacy table (in place).
	Table string `json:"table"`
	// Database is "product", "cart" or "legacy".
	Database string `json:"database"`
	// LegacyRows and TargetRows are the rows counted on each side by the
	// verification; LegacyChecksum and TargetChecksum are computed the same
	// way on both (see the README).
	LegacyRows     int64  `json:"legacyRows"`
	TargetRows     int64  `json:"targetRows"`
	LegacyChecksum string `json:"legacyChecksum"`
	TargetChecksum string `json:"targetChecksum"`
	Match          bool   `json:"match"`
	// Read is the legacy rows read by this run; Written the target rows it
	// inserted, updated or deleted.
	Read    int64 `json:"read"`
	Written int64 `json:"written"`
	Batches int   `json:"batches"`
	// Seconds is the time spent copying; ReadSeconds the time spent
	// reading the legacy database, overlapped with the writing;
	// RowsPerSecond = Written / Seconds.
	Seconds       float64 `json:"seconds"`
	ReadSeconds   float64 `json:"readSeconds"`
	RowsPerSecond float64 `json:"rowsPerSecond"`
	// PlainCopyRowsPerSecond is a plain COPY of the same rows into the
	// same table, measured in the same run (--compare-copy): each batch's
	// rows COPYed in a transaction of their own (BEGIN, COPY, and a
	// ROLLBACK standing for the COMMIT, timed) right before the batch is
	// written, outside the copy's time; plus the one cost every copy
	// of the table pays once whatever its size: reading its first batch
	// from the legacy database, which nothing overlaps
	// (BaselineFirstReadSeconds, timed again after the table's copy).
	// Ratio is RowsPerSecond over it.
	PlainCopyRowsPerSecond   float64 `json:"plainCopyRowsPerSecond,omitempty"`
	BaselineFirstReadSeconds float64 `json:"baselineFirstReadSeconds,omitempty"`
	Ratio                    float64 `json:"ratio,omitempty"`

	// baselineRows and baselineSeconds add up the plain COPYs.
	baselineRows    int64
	baselineSeconds float64
}

// Orphan counts rows whose parent is deleted in the legacy database and
// says where they went.
type Orphan struct {
	Kind    string `json:"kind"`
	Count   int64  `json:"count"`
	Carried string `json:"carried"`
}

// Problem is one thing found in the legacy data (or the targets) that a
// plain copy would get wrong.
type Problem struct {
	// Kind names the problem: duplicate-category-name, duplicate-sku,
	// precision, out-of-range, invalid, unmapped-user, expired-promo-code,
	// over-redeemed-promo-code, target-not-empty.
	Kind     string `json:"kind"`
	Table    string `json:"table"`
	LegacyID int64  `json:"legacyId,omitempty"`
	Detail   string `json:"detail"`
	// Resolution is what the run does about it.
	Resolution string `json:"resolution"`
	// Blocking problems stop a split (or in-place run) before it writes.
	Blocking bool `json:"blocking,omitempty"`
}

// blocking returns the blocking problems.
func (r *Report) blocking() []Problem {
	var out []Problem
	for _, p := range r.Problems {
		if p.Blocking {
			out = append(out, p)
		}
	}
	return out
}

// write writes the report as <dir>/shopmigrate-<mode>-<time>.md and .json
// and returns their paths.
func (r *Report) write(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("shopmigrate-%s-%s", r.Mode, r.Started.UTC().Format("20060102T150405.000Z"))
	if r.DryRun {
		name += "-dry-run"
	}
	base := filepath.Join(dir, name)
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(base+".json", append(js, '\n'), 0o644); err != nil {
		return nil, err
	}
	var md strings.Builder
	r.Markdown(&md)
	if err := os.WriteFile(base+".md", []byte(md.String()), 0o644); err != nil {
		return nil, err
	}
	return []string{base + ".md", base + ".json"}, nil
}

// markdownProblemsPerKind bounds the problems listed per kind in the
// Markdown of a run that wrote (a dry run lists them all, for review); the
// JSON file lists them all.
const markdownProblemsPerKind = 20

// Markdown writes the report for people to w.
func (r *Report) Markdown(w io.Writer) {
	r.markdownSummary(w)
	if len(r.Steps) > 0 {
		fmt.Fprintf(w, "## Steps\n\n")
		for i, s := range r.Steps {
			fmt.Fprintf(w, "%d. %s\n", i+1, s)
		}
		fmt.Fprintln(w)
	}
	if len(r.Tables) > 0 {
		r.markdownTables(w)
	}
	if len(r.Orphans) > 0 {
		fmt.Fprintf(w, "## Orphans (carried, not dropped)\n\n| kind | rows | carried as |\n|---|---:|---|\n")
		for _, o := range r.Orphans {
			fmt.Fprintf(w, "| %s | %d | %s |\n", o.Kind, o.Count, o.Carried)
		}
		fmt.Fprintln(w)
	}
	r.markdownProblems(w)
}

// markdownSummary writes the title, the outcome and the run's figures.
func (r *Report) markdownSummary(w io.Writer) {
	title := map[string]string{"split": "Split into productsvc and cartsvc", "inplace": "In-place migration of the legacy database"}[r.Mode]
	if r.DryRun {
		title += " (dry run: nothing written)"
	}
	fmt.Fprintf(w, "# %s\n\n%s\n\n", title, r.Outcome)
	fmt.Fprintf(w, "- started %s, took %.2f s", r.Started.UTC().Format(time.RFC3339), r.Seconds)
	if r.CopySeconds > 0 {
		fmt.Fprintf(w, " (checks %.2f s, copy %.2f s, verification %.2f s)", r.ChecksSeconds, r.CopySeconds, r.VerifySeconds)
	}
	fmt.Fprintln(w)
	if r.Pass > 0 {
		kind := "first copy"
		if r.Pass > 1 {
			kind = "catch-up (rows changed since the pass before)"
		}
		if r.Resumed {
			kind += ", resumed"
		}
		fmt.Fprintf(w, "- pass %d: %s\n", r.Pass, kind)
	}
	if r.DryRun && r.Mode == "split" {
		fmt.Fprintf(w, "- nothing written; verification runs after a copy\n\n")
	} else {
		fmt.Fprintf(w, "- rows changed: %d\n- verified: %t\n\n", r.Changed, r.Verified)
	}
}

// markdownTables writes the table of tables: rows, checksums and speed.
func (r *Report) markdownTables(w io.Writer) {
	fmt.Fprintf(w, "## Tables\n\n| table | database | legacy rows | target rows | checksums | read | written | rows/s | plain COPY rows/s | ratio |\n|---|---|---:|---:|---|---:|---:|---:|---:|---:|\n")
	for _, t := range r.Tables {
		sums := "match"
		switch {
		case t.LegacyChecksum == "" && t.TargetChecksum == "":
			sums = "not verified"
		case !t.Match:
			sums = fmt.Sprintf("DIFFER (%s ≠ %s)", t.LegacyChecksum, t.TargetChecksum)
		}
		plain, ratio := "", ""
		if t.PlainCopyRowsPerSecond > 0 {
			plain, ratio = fmt.Sprintf("%.0f", t.PlainCopyRowsPerSecond), fmt.Sprintf("%.2f×", t.Ratio)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %d | %d | %.0f | %s | %s |\n",
			t.Table, t.Database, t.LegacyRows, t.TargetRows, sums, t.Read, t.Written, t.RowsPerSecond, plain, ratio)
	}
	fmt.Fprintln(w)
}

// markdownProblems writes the problems by kind, at most
// markdownProblemsPerKind of each unless a dry run.
func (r *Report) markdownProblems(w io.Writer) {
	fmt.Fprintf(w, "## Problems\n\n")
	if len(r.Problems) == 0 {
		fmt.Fprintf(w, "None.\n")
		return
	}
	byKind := map[string][]Problem{}
	var kinds []string
	for _, p := range r.Problems {
		if _, ok := byKind[p.Kind]; !ok {
			kinds = append(kinds, p.Kind)
		}
		byKind[p.Kind] = append(byKind[p.Kind], p)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		ps := byKind[k]
		block := ""
		if ps[0].Blocking {
			block = ", BLOCKING"
		}
		fmt.Fprintf(w, "### %s (%d%s)\n\n| table | legacy id | detail | resolution |\n|---|---:|---|---|\n", k, len(ps), block)
		for i, p := range ps {
			if i == markdownProblemsPerKind && !r.DryRun {
				fmt.Fprintf(w, "\n… and %d more, all listed in the JSON report.\n", len(ps)-i)
				break
			}
			fmt.Fprintf(w, "| %s | %d | %s | %s |\n", p.Table, p.LegacyID, mdCell(p.Detail), mdCell(p.Resolution))
		}
		fmt.Fprintln(w)
	}
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
