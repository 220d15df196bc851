package cartsvc

import (
	"math"
	"testing"

	"github.com/google/uuid"

	"github.com/decoupledshop/shop/internal/shoperr"
)

// TestBuildCartOverflow feeds buildCart amounts no valid cart can reach
// (prices are capped at 10^11): the overflow is an error clients see as
// ResourceExhausted, never a wrapped-around total.
func TestBuildCartOverflow(t *testing.T) {
	t.Parallel()
	line := func(price int64, quantity int32) cartLine {
		return cartLine{
			ProductID: uuid.New(), Quantity: quantity, Name: "x", UnitPriceMinor: price,
			AddedUnitPriceMinor: price, CurrencyCode: "EUR", ProductVersion: 1, Available: true,
		}
	}
	// A price beyond the cap (bad data) makes the line unavailable.
	c, err := buildCart("EUR", []cartLine{line(math.MaxInt64, 3), line(7, 2)}, nil, nil)
	if err != nil || c.Items[0].Available || c.Total.AmountMinor != 14 {
		t.Errorf("a snapshot priced at MaxInt64: %v, %v; want it unavailable, total 0.14", c, err)
	}
	// The largest sellable price times quantities no request can set:
	// one line beyond int64, or two lines whose sum is.
	for name, lines := range map[string][]cartLine{
		"line total": {line(100_000_000_000, math.MaxInt32)},
		"subtotal":   {line(100_000_000_000, 90_000_000), line(100_000_000_000, 90_000_000)},
	} {
		if _, err := buildCart("EUR", lines, nil, nil); shoperr.CodeOf(err) != shoperr.CodeResourceExhausted {
			t.Errorf("a %s beyond int64: %v, want ResourceExhausted", name, err)
		}
	}
	// And rounding plus the cap on discounts.
	c, err = buildCart("EUR", []cartLine{line(5, 1)}, []cartHold{
		{Code: "HALF", PercentOff: 50, CurrencyCode: "EUR"},
		{Code: "ALL", AmountOffMinor: 100, CurrencyCode: "EUR"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.PromoCodes[0].Discount.AmountMinor != 2 || c.PromoCodes[1].Discount.AmountMinor != 3 || c.Total.AmountMinor != 0 || !c.Stale {
		t.Errorf("50%% of 5 then 1.00 off the rest: %v; want 2 (half-even), 3, total 0, stale (snapshot)", c)
	}
}
