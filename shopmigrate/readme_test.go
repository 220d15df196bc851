package shopmigrate

import (
	"strings"
	"testing"

	"github.com/decoupledshop/shop/internal/shoptest"
)

// TestReadmeWalkthroughs runs the README's split and in-place commands
// verbatim on generated legacy databases.
func TestReadmeWalkthroughs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the command")
	}
	t.Parallel()
	b := setup(t, SmallSize)
	out := shoptest.RunShell(t, shoptest.ReadmeBlock(t, "migrate-split"),
		"LEGACY_URL="+b.cfg.LegacyURL, "PRODUCT_DATABASE_URL="+b.cfg.ProductURL, "CART_DATABASE_URL="+b.cfg.CartURL, "REPORT_DIR="+t.TempDir())
	t.Logf("the split walkthrough's output:\n%s", out)
	for _, want := range []string{"Dry run of pass 1", "Pass 1 copied", "Nothing changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("the split walkthrough's output lacks %q:\n%s", want, out)
		}
	}

	other := setup(t, SmallSize)
	out = shoptest.RunShell(t, shoptest.ReadmeBlock(t, "migrate-inplace"), "LEGACY_URL="+other.cfg.LegacyURL, "REPORT_DIR="+t.TempDir())
	t.Logf("the in-place walkthrough's output:\n%s", out)
	for _, want := range []string{"Dry run: the migration ran", "Migrated in place", "Undone"} {
		if !strings.Contains(out, want) {
			t.Errorf("the in-place walkthrough's output lacks %q:\n%s", want, out)
		}
	}
}
