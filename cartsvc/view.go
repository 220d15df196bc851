package cartsvc

import (
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/decoupledshop/shop/cartsvc/catalog"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
	"github.com/decoupledshop/shop/internal/money"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// errTotalTooLarge is returned when a cart's amounts overflow int64. With
// prices capped at money.MaxPriceMinor, 100 lines and 999 per line this
// cannot happen; it guards against bad data rather than users.
var errTotalTooLarge = shoperr.ResourceExhausted("the cart's total is larger than the shop can compute; remove some items")

// buildCart computes the cart clients see from its lines, the promo codes
// it holds that give a discount now, and the product data looked up.
//
// A line is available unless its product is known to be deleted (from its
// snapshot, the product_versions tombstone, or productsvc) or cannot be
// sold in the shop currency; unavailable lines are shown but left out of
// the totals. Live data replaces the line's snapshot; a line with no live
// or fresh cached data shows its snapshot, and the cart is then stale.
// price_changed compares the shown price with the price when the line was
// added. Amounts are int64 minor units with overflow checks
// (errTotalTooLarge); each percent discount is rounded half-even on the
// subtotal, and discounts never exceed the subtotal, so the total is never
// below zero.
func buildCart(cur money.Currency, lines []cartdb.ListCartLinesRow, holds []cartdb.ListCartHoldsRow, products map[uuid.UUID]catalog.Entry) (*cartv1.Cart, error) {
	cart := &cartv1.Cart{
		Items:      make([]*cartv1.CartItem, 0, len(lines)),
		PromoCodes: make([]*cartv1.AppliedPromoCode, 0, len(holds)),
	}
	var subtotal int64
	for _, l := range lines {
		name, price, currency := l.Name, l.UnitPriceMinor, l.CurrencyCode
		available := l.Available && !l.KnownDeleted
		if available {
			e, ok := products[l.ProductID]
			switch {
			case !ok:
				cart.Stale = true // the snapshot stands in for live data
			case e.Missing:
				available = false
			default:
				cart.Stale = cart.Stale || e.Stale
				name, price, currency = e.Name, e.PriceMinor, e.Currency
			}
		}
		available = available && sellable(cur, catalog.Product{PriceMinor: price, Currency: currency})
		var lineTotal int64
		if available {
			var ok bool
			if lineTotal, ok = money.Mul(price, int64(l.Quantity)); !ok {
				return nil, errTotalTooLarge
			}
			if subtotal, ok = money.Add(subtotal, lineTotal); !ok {
				return nil, errTotalTooLarge
			}
		}
		cart.Items = append(cart.Items, &cartv1.CartItem{
			ProductId:      l.ProductID.String(),
			Quantity:       l.Quantity,
			Name:           name,
			UnitPrice:      money.Currency(currency).Of(price),
			AddedUnitPrice: money.Currency(l.CurrencyCode).Of(l.AddedUnitPriceMinor),
			PriceChanged:   available && (price != l.AddedUnitPriceMinor || currency != l.CurrencyCode),
			Available:      available,
			LineTotal:      cur.Of(lineTotal),
		})
	}
	var discount int64
	for _, h := range holds {
		var d int64
		switch {
		case h.PercentOff.Valid:
			d = money.PercentOf(subtotal, h.PercentOff.Int32)
		case h.AmountOffMinor.Valid && h.CurrencyCode == string(cur):
			d = h.AmountOffMinor.Int64
		}
		d = min(d, subtotal-discount)
		discount += d
		cart.PromoCodes = append(cart.PromoCodes, &cartv1.AppliedPromoCode{Code: h.Code, Discount: cur.Of(d)})
	}
	cart.Subtotal = cur.Of(subtotal)
	cart.Discount = cur.Of(discount)
	cart.Total = cur.Of(subtotal - discount)
	return cart, nil
}

// wishlistView converts wishlist rows; a product known to be deleted is
// unavailable.
func wishlistView(rows []cartdb.ListWishlistItemsRow) *cartv1.Wishlist {
	w := &cartv1.Wishlist{Items: make([]*cartv1.WishlistItem, 0, len(rows))}
	for _, r := range rows {
		w.Items = append(w.Items, &cartv1.WishlistItem{
			ProductId: r.ProductID.String(),
			Name:      r.Name,
			Price:     money.Currency(r.CurrencyCode).Of(r.PriceMinor),
			Available: r.Available && !r.KnownDeleted,
			AddTime:   timestamppb.New(r.AddTime),
		})
	}
	return w
}

// promoView converts a stored promo code with its current redemptions.
func promoView(p cartdb.PromoCode, redemptions int64) *cartv1.PromoCode {
	out := &cartv1.PromoCode{
		Code:           p.Code,
		MaxRedemptions: p.MaxRedemptions,
		Redemptions:    int32(min(redemptions, int64(1<<31-1))),
		StartTime:      timestamppb.New(p.StartTime),
		EndTime:        timestamppb.New(p.EndTime),
		Active:         p.Active,
		CreateTime:     timestamppb.New(p.CreateTime),
	}
	switch {
	case p.PercentOff.Valid:
		out.Discount = &cartv1.PromoCode_PercentOff{PercentOff: p.PercentOff.Int32}
	case p.AmountOffMinor.Valid:
		out.Discount = &cartv1.PromoCode_AmountOff{AmountOff: money.Currency(p.CurrencyCode).Of(p.AmountOffMinor.Int64)}
	}
	return out
}
