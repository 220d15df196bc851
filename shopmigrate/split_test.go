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
