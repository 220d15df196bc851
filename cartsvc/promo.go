package cartsvc

import (
	"slices"
	"time"

	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// applyPromoCode adds the hold of code to the cart (see
// CartServer.ApplyPromoCode). writeCart has already dropped the cart's
// lapsed and dead holds and marked the cart written.
func (w *cartWrite) applyPromoCode(code string) error {
	p, err := w.q.LockPromoCode(w.ctx, code)
	if isNoRows(err) {
		return shoperr.NotFound("promo code %s not found", code)
	}
	if err != nil {
		return err
	}
	switch {
	case !p.Active:
		return shoperr.FailedPrecondition("promo code %s is no longer active", code)
	case w.now.Before(p.StartTime):
		return shoperr.FailedPrecondition("promo code %s is valid from %s", code, p.StartTime.Format(time.RFC3339))
	case !w.now.Before(p.EndTime):
		return shoperr.FailedPrecondition("promo code %s has expired", code)
	case p.AmountOffMinor.Valid && p.CurrencyCode != string(w.s.currency):
		return shoperr.FailedPrecondition("promo code %s is not in the shop currency", code)
	}
	held, err := w.q.ListCartHoldCodes(w.ctx, w.user)
	if err != nil {
		return err
	}
	if slices.Contains(held, code) {
		return nil
	}
	if len(held) > 0 {
		return shoperr.FailedPrecondition("the cart already holds promo code %s; remove it first (one code per cart)", held[0])
	}
	if p.MaxRedemptions > 0 {
		n, err := w.q.CountHolds(w.ctx, cartdb.CountHoldsParams{Code: code, Cutoff: w.s.holdCutoff(w.now)})
		if err != nil {
			return err
		}
		if n >= int64(p.MaxRedemptions) {
			return shoperr.ResourceExhausted("promo code %s has been redeemed the maximum number of times", code)
		}
	}
	return w.q.AddHold(w.ctx, cartdb.AddHoldParams{UserID: w.user, Code: code, Now: w.now})
}
