package scaletest_test

import (
	"os"
	"testing"

	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/shopload"
)

func TestMain(m *testing.M) {
	defer shopload.RemoveBuilt()
	pgtest.Main(m)
}

// long skips t unless SHOP_LONG=1 asks for the long tests.
func long(t *testing.T) {
	t.Helper()
	if os.Getenv("SHOP_LONG") != "1" {
		t.Skip("a long test: set SHOP_LONG=1 to run it")
	}
}
