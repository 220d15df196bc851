package shopmigrate

import (
	"testing"
)

// TestLongSplitLargeDataset splits the large dataset (100k products, 20k
// carts, 200k lines, with the dirt) with COPY, printing each table's rows/s
// beside a plain COPY of the same rows in the same run (plus the first
// batch's legacy read, see TableReport); verifies counts
// and checksums; changes a few thousand legacy rows and measures the
// catch-up pass, the write freeze a cut-over needs; then checks that one
// more run changes nothing.
func TestLongSplitLargeDataset(t *testing.T) {
	long(t)
	b := setup(t, LargeSize)
	b.cfg.CompareCopy = true
	b.cfg.BatchSize = 5000 // the command's default
	rep := split(t, b.cfg)
	t.Logf("first pass: %.1fs (checks %.1fs, copy %.1fs, verification %.1fs), %d rows, verified %t",
		rep.Seconds, rep.ChecksSeconds, rep.CopySeconds, rep.VerifySeconds, rep.Changed, rep.Verified)
	for _, tr := range rep.Tables {
		t.Logf("  %-17s %7d rows  %8.0f rows/s  plain COPY %8.0f rows/s (first legacy read %.3fs)  ratio %.2f×  (%d batches, %.1fs of %.1fs reading legacy)",
			tr.Table, tr.TargetRows, tr.RowsPerSecond, tr.PlainCopyRowsPerSecond, tr.BaselineFirstReadSeconds, tr.Ratio, tr.Batches, tr.ReadSeconds, tr.Seconds)
	}
	for _, tr := range rep.Tables {
		if !tr.Match {
			t.Errorf("%s: %d legacy rows, %d target; checksums %s, %s", tr.Table, tr.LegacyRows, tr.TargetRows, tr.LegacyChecksum, tr.TargetChecksum)
		}
	}

	// A busy hour's writes: 2000 price changes, 1000 carts changed, 100
	// products deleted, a category renamed.
	execSQL(t, b.legacy, `UPDATE products SET price = price + 1 WHERE id % 50 = 1`)
	execSQL(t, b.legacy, `UPDATE products SET deleted_at = now() WHERE id % 1000 = 7`)
	execSQL(t, b.legacy, `UPDATE cart_items SET quantity = quantity % 5 + 1 WHERE cart_id % 20 = 3`)
	execSQL(t, b.legacy, `DELETE FROM cart_items WHERE cart_id % 200 = 5`)
	execSQL(t, b.legacy, `UPDATE categories SET name = 'Renamed 11' WHERE id = 11`)
	catchUp := split(t, b.cfg)
	t.Logf("catch-up pass (the write freeze at cut-over, for these writes): %.2fs (checks %.1fs, copy %.1fs, verification %.1fs), %d rows changed, verified %t",
		catchUp.Seconds, catchUp.ChecksSeconds, catchUp.CopySeconds, catchUp.VerifySeconds, catchUp.Changed, catchUp.Verified)
	if catchUp.Pass != 2 || catchUp.Changed == 0 {
		t.Errorf("catch-up: pass %d, changed %d", catchUp.Pass, catchUp.Changed)
	}
	again := split(t, b.cfg)
	if again.Changed != 0 || !again.Verified {
		t.Errorf("a run with nothing new changed %d rows (verified %t)", again.Changed, again.Verified)
	}
	t.Logf("a run with nothing new: %.2fs (checks %.1fs, copy %.1fs, verification %.1fs)", again.Seconds, again.ChecksSeconds, again.CopySeconds, again.VerifySeconds)
}
