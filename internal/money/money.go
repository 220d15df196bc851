// Package money validates and computes amounts of the shop's single currency
// in integer minor units, with overflow checks. No floating point anywhere.
package money

import (
	"math"
	"regexp"

	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// MaxPriceMinor is the largest single price, 10^11 minor units.
const MaxPriceMinor int64 = 100_000_000_000

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// Currency is the shop's ISO 4217 currency code; every amount the shop
// accepts or reports is in it.
type Currency string

// ParseCurrency returns s as a Currency if it is three upper-case letters.
func ParseCurrency(s string) (Currency, bool) {
	if !currencyPattern.MatchString(s) {
		return "", false
	}
	return Currency(s), true
}

// Of returns amount minor units of c as a message.
func (c Currency) Of(amount int64) *typev1.Money {
	return &typev1.Money{CurrencyCode: string(c), AmountMinor: amount}
}

// CheckAmount validates a client-supplied amount: present, in the shop
// currency, and within 0..max. It returns the amount in minor units, or a
// shoperr.Invalid error naming field (or field.currency_code /
// field.amount_minor).
func (c Currency) CheckAmount(field string, m *typev1.Money, max int64) (int64, error) {
	switch {
	case m == nil:
		return 0, shoperr.Invalid(field, "is required")
	case m.GetCurrencyCode() != string(c):
		return 0, shoperr.Invalid(field+".currency_code", "must be %s, the shop currency", c)
	case m.GetAmountMinor() < 0:
		return 0, shoperr.Invalid(field+".amount_minor", "must not be negative")
	case m.GetAmountMinor() > max:
		return 0, shoperr.Invalid(field+".amount_minor", "must be at most %d", max)
	}
	return m.GetAmountMinor(), nil
}

// CheckPrice is CheckAmount with the price cap MaxPriceMinor.
func (c Currency) CheckPrice(field string, m *typev1.Money) (int64, error) {
	return c.CheckAmount(field, m, MaxPriceMinor)
}

// Add returns a+b, or false if the sum overflows int64.
func Add(a, b int64) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, false
	}
	return a + b, true
}

// Mul returns a*b, or false if the product overflows int64.
func Mul(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	p := a * b
	if p/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		return 0, false
	}
	return p, true
}

// PercentOf returns percent% of amount (amount ≥ 0, percent in 0..100),
// rounded half to even. It cannot overflow.
func PercentOf(amount int64, percent int32) int64 {
	p := int64(percent)
	// amount = 100h + l, so amount*p/100 = h*p + l*p/100 with h*p ≤ amount.
	h, l := amount/100, amount%100
	q, r := h*p+(l*p)/100, (l*p)%100
	if r > 50 || (r == 50 && q%2 == 1) {
		q++
	}
	return q
}
