package money

import (
	"math"
	"testing"

	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/internal/shoperr"
)

func TestPercentOfRoundsHalfToEven(t *testing.T) {
	t.Parallel()
	cases := []struct {
		amount  int64
		percent int32
		want    int64
	}{
		{1000, 10, 100},
		{5, 10, 0},     // 0.5 → 0 (even)
		{15, 10, 2},    // 1.5 → 2 (even)
		{25, 10, 2},    // 2.5 → 2 (even)
		{35, 10, 4},    // 3.5 → 4
		{16, 10, 2},    // 1.6 → 2
		{14, 10, 1},    // 1.4 → 1
		{999, 33, 330}, // 329.67 → 330
		{1, 50, 0},     // 0.5 → 0
		{3, 50, 2},     // 1.5 → 2
		{12345, 100, 12345},
		{12345, 0, 0},
		{math.MaxInt64, 100, math.MaxInt64},
		{math.MaxInt64, 50, math.MaxInt64 / 2}, // 4611686018427387903.5 → ...904? see below
	}
	// MaxInt64 = 9223372036854775807 is odd: half of it is ...903.5, and the
	// even neighbour is ...904.
	cases[len(cases)-1].want = 4611686018427387904
	for _, c := range cases {
		if got := PercentOf(c.amount, c.percent); got != c.want {
			t.Errorf("PercentOf(%d, %d) = %d, want %d", c.amount, c.percent, got, c.want)
		}
	}
}

func TestAddMulOverflow(t *testing.T) {
	t.Parallel()
	if _, ok := Add(math.MaxInt64, 1); ok {
		t.Error("Add(MaxInt64, 1) reported no overflow")
	}
	if s, ok := Add(MaxPriceMinor, MaxPriceMinor); !ok || s != 2*MaxPriceMinor {
		t.Errorf("Add(max price, max price) = %d, %v", s, ok)
	}
	if _, ok := Mul(math.MaxInt64/2+1, 2); ok {
		t.Error("Mul overflow not reported")
	}
	if _, ok := Mul(math.MinInt64, -1); ok {
		t.Error("Mul(MinInt64, -1) overflow not reported")
	}
	if p, ok := Mul(MaxPriceMinor, 999); !ok || p != 99_900_000_000_000 {
		t.Errorf("Mul(max price, 999) = %d, %v", p, ok)
	}
}

func TestCheckPriceNamesTheField(t *testing.T) {
	t.Parallel()
	eur := Currency("EUR")
	cases := []struct {
		in        *typev1.Money
		wantField string
	}{
		{nil, "price"},
		{&typev1.Money{CurrencyCode: "USD", AmountMinor: 1}, "price.currency_code"},
		{&typev1.Money{CurrencyCode: "EUR", AmountMinor: -1}, "price.amount_minor"},
		{&typev1.Money{CurrencyCode: "EUR", AmountMinor: MaxPriceMinor + 1}, "price.amount_minor"},
	}
	for _, c := range cases {
		_, err := eur.CheckPrice("price", c.in)
		var se *shoperr.Error
		if !asErr(err, &se) || se.Code != shoperr.CodeInvalid || se.Field != c.wantField {
			t.Errorf("CheckPrice(%v) = %v, want Invalid on %s", c.in, err, c.wantField)
		}
	}
	if got, err := eur.CheckPrice("price", eur.Of(MaxPriceMinor)); err != nil || got != MaxPriceMinor {
		t.Errorf("CheckPrice(max) = %d, %v; want accepted", got, err)
	}
}

func asErr(err error, target **shoperr.Error) bool {
	se, ok := err.(*shoperr.Error)
	*target = se
	return ok
}

func TestParseCurrency(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{"EUR": true, "eur": false, "EURO": false, "": false, "E1R": false} {
		if _, ok := ParseCurrency(in); ok != want {
			t.Errorf("ParseCurrency(%q) ok = %v, want %v", in, ok, want)
		}
	}
}
