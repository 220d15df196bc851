package shopmigrate

import (
	"strings"
	"testing"
)

// TestSplitCopiesAndVerifies splits the small dirty dataset: the report
// lists each kind of dirt with its resolution, every table's count and
// checksum match, orphans are carried, and a second run changes nothing
// and says so.
func TestSplitCopiesAndVerifies(t *testing.T) {
	t.Parallel()
	b := setup(t, SmallSize)
	rep := split(t, b.cfg)
	t.Logf("first split: %.2fs", rep.Seconds)
	if !rep.Verified || rep.Pass != 1 || rep.Changed == 0 {
		t.Fatalf("first split: verified %t, pass %d, changed %d; want verified pass 1 with rows", rep.Verified, rep.Pass, rep.Changed)
	}
	kinds := map[string]int{}
	for _, p := range rep.Problems {
		kinds[p.Kind]++
		if p.Blocking {
			t.Errorf("blocking problem with --round-fractions: %+v", p)
		}
	}
	for _, k := range []string{"duplicate-category-name", "duplicate-sku", "precision", "unmapped-user", "expired-promo-code", "over-redeemed-promo-code"} {
		if kinds[k] == 0 {
			t.Errorf("no %s problem reported; the dataset has some (got %v)", k, kinds)
		}
	}
	for _, tr := range rep.Tables {
		if !tr.Match || tr.LegacyRows == 0 {
			t.Errorf("table %s: %d legacy rows, %d target, match %t", tr.Table, tr.LegacyRows, tr.TargetRows, tr.Match)
		}
	}
	for _, o := range rep.Orphans {
		if o.Count == 0 || !strings.Contains(o.Carried, "all") {
			t.Errorf("orphans %q: %d, %s; want some, all carried", o.Kind, o.Count, o.Carried)
		}
	}
	if got, want := count(t, b.product, `SELECT count(*) FROM products`), count(t, b.legacy, `SELECT count(*) FROM products WHERE deleted_at IS NULL`); got != want {
		t.Errorf("productsvc has %d products; want the %d live legacy ones", got, want)
	}
	before := b.dump(t)

	again := split(t, b.cfg)
	t.Logf("second split: %.2fs", again.Seconds)
	if again.Changed != 0 || !again.Verified || !strings.HasPrefix(again.Outcome, "Nothing changed") {
		t.Errorf("second run: changed %d, verified %t, outcome %q; want nothing changed, verified", again.Changed, again.Verified, again.Outcome)
	}
	if after := b.dump(t); after != before {
		t.Errorf("the second run changed the targets: %s", firstDiff(before, after))
	}
}

// TestSplitRefusesBlockingProblems: without --round-fractions the
// fractions of a cent block the split, and nothing is written; a dry run
// lists every problem and the rows each table would copy, writing nothing.
func TestSplitRefusesBlockingProblems(t *testing.T) {
	t.Parallel()
	b := setup(t, SmallSize)
	cfg := b.cfg
	cfg.RoundFractions = false
	cfg.DryRun = true
	plan := split(t, cfg)
	if !plan.DryRun || len(plan.blocking()) == 0 {
		t.Fatalf("dry run: %d blocking problems; want the fractions of a cent", len(plan.blocking()))
	}
	for _, p := range plan.blocking() {
		if p.Kind != "precision" || !strings.Contains(p.Resolution, "--round-fractions") {
			t.Errorf("blocking problem %+v; want only precision ones, saying how to go on", p)
		}
	}
	var md strings.Builder
	plan.Markdown(&md)
	for _, want := range []string{"| cart_items | cart | 1500 |", "precision", "duplicate-sku", "BLOCKING"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("dry-run report lacks %q:\n%s", want, md.String())
		}
	}

	cfg.DryRun = false
	rep, err := Split(t.Context(), cfg)
	if err == nil || !strings.HasPrefix(rep.Outcome, "Refused") {
		t.Fatalf("split with blocking problems: err %v, outcome %q; want refused", err, rep.Outcome)
	}
	if ok, _ := hasState(t.Context(), b.cart); ok {
		t.Error("a refused split created its state in the cart database")
	}
	if n := count(t, b.product, `SELECT count(*) FROM products`); n != 0 {
		t.Errorf("a refused split wrote %d products", n)
	}
}

// TestSplitResumesAfterFailure fails a split after 5 batches, reruns it,
// and gets exactly what a split that never failed gets.
func TestSplitResumesAfterFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, SmallSize)
	b.cfg.BatchSize = 200
	cfg := b.cfg
	cfg.failAfterBatches = 5
	rep, err := Split(t.Context(), cfg)
	if err == nil || !strings.Contains(rep.Outcome, "rerun the same command to resume") {
		t.Fatalf("split with a failure injected: err %v, outcome %q", err, rep.Outcome)
	}
	if n := count(t, b.product, `SELECT sum(batches) FROM shopmigrate.checkpoints`); n != 5 {
		t.Errorf("checkpoints record %d batches; want the 5 committed", n)
	}
	resumed := split(t, b.cfg)
	if !resumed.Resumed || resumed.Pass != 1 || !resumed.Verified {
		t.Errorf("rerun: resumed %t, pass %d, verified %t; want the first pass resumed and verified", resumed.Resumed, resumed.Pass, resumed.Verified)
	}
	got := b.dump(t)

	b.retarget(t)
	split(t, b.cfg)
	if want := b.dump(t); got != want {
		t.Errorf("the resumed split differs from an uninterrupted one: %s", firstDiff(got, want))
	}
}
