package cartsvc

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/decoupledshop/shop/cartsvc/productclient"
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
func buildCart(cur money.Currency, lines []cartLine, holds []cartHold, products map[uuid.UUID]productclient.Entry) (*cartv1.Cart, error) {
	cart := &cartv1.Cart{
		Items:      make([]*cartv1.CartItem, 0, len(lines)),
		PromoCodes: make([]*cartv1.AppliedPromoCode, 0, len(holds)),
	}
	var subtotal int64
	for _, l := range lines {
		shown := showLine(cur, l, products)
		cart.Stale = cart.Stale || shown.stale
		var lineTotal int64
		if shown.available {
			var ok bool
			if lineTotal, ok = money.Mul(shown.price, int64(l.Quantity)); !ok {
				return nil, errTotalTooLarge
			}
			if subtotal, ok = money.Add(subtotal, lineTotal); !ok {
				return nil, errTotalTooLarge
			}
		}
		cart.Items = append(cart.Items, &cartv1.CartItem{
			ProductId:      l.ProductID.String(),
			Quantity:       l.Quantity,
			Name:           shown.name,
			UnitPrice:      money.Currency(shown.currency).Of(shown.price),
			AddedUnitPrice: money.Currency(l.CurrencyCode).Of(l.AddedUnitPriceMinor),
			PriceChanged:   shown.available && (shown.price != l.AddedUnitPriceMinor || shown.currency != l.CurrencyCode),
			Available:      shown.available,
			LineTotal:      cur.Of(lineTotal),
		})
	}
	discount := addDiscounts(cart, cur, holds, subtotal)
	cart.Subtotal = cur.Of(subtotal)
	cart.Discount = cur.Of(discount)
	cart.Total = cur.Of(subtotal - discount)
	return cart, nil
}

// shownLine is what a cart shows of one line's product.
type shownLine struct {
	name     string
	price    int64
	currency string
	// available: the line counts in the totals.
	available bool
	// stale: the snapshot or stale cached data stands in for live data.
	stale bool
}

// showLine is what the cart shows of l, given the product data looked up
// (see buildCart).
func showLine(cur money.Currency, l cartLine, products map[uuid.UUID]productclient.Entry) shownLine {
	shown := shownLine{name: l.Name, price: l.UnitPriceMinor, currency: l.CurrencyCode, available: l.Available && !l.KnownDeleted}
	if shown.available {
		e, ok := products[l.ProductID]
		switch {
		case !ok:
			shown.stale = true // the snapshot stands in for live data
		case e.Missing:
			shown.available = false
		default:
			shown.stale = e.Stale
			shown.name, shown.price, shown.currency = e.Name, e.PriceMinor, e.Currency
		}
	}
	shown.available = shown.available && sellable(cur, productclient.Product{PriceMinor: shown.price, Currency: shown.currency})
	return shown
}

// addDiscounts adds to cart the discount each of its holds gives on
// subtotal, and returns their sum, which never exceeds subtotal.
func addDiscounts(cart *cartv1.Cart, cur money.Currency, holds []cartHold, subtotal int64) int64 {
	var discount int64
	for _, h := range holds {
		var d int64
		switch {
		case h.PercentOff > 0:
			d = money.PercentOf(subtotal, h.PercentOff)
		case h.AmountOffMinor > 0 && h.CurrencyCode == string(cur):
			d = h.AmountOffMinor
		}
		d = min(d, subtotal-discount)
		discount += d
		cart.PromoCodes = append(cart.PromoCodes, &cartv1.AppliedPromoCode{Code: h.Code, Discount: cur.Of(d)})
	}
	return discount
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

// cartLine is one cart line with what the service knows of its product:
// the highest version heard of (0 if none) and whether it deleted it.
type cartLine struct {
	ProductID           uuid.UUID
	Quantity            int32
	Name                string
	UnitPriceMinor      int64
	AddedUnitPriceMinor int64
	CurrencyCode        string
	ProductVersion      int64
	Available           bool
	KnownVersion        int64
	KnownDeleted        bool
}

// cartHold is a promo code the cart holds that gives a discount now;
// PercentOff or AmountOffMinor is 0 where the code has none.
type cartHold struct {
	Code           string
	PercentOff     int32
	AmountOffMinor int64
	CurrencyCode   string
}

// cartView is what readCart reads in one round trip.
type cartView struct {
	// revision of the cart read (GetCartRevisions; 0: no cart).
	revision int64
	lines    []cartLine
	holds    []cartHold
	// marks of the products asked for (fresh) that have one.
	marks []cartdb.GetProductVersionsRow
	// fingerprint and response of the stored result of the request_id
	// asked for; nil if none.
	fingerprint, response []byte
}

// deleted returns the products of v's lines known to be deleted (nil if
// none).
func (v cartView) deleted() map[uuid.UUID]bool {
	var out map[uuid.UUID]bool
	for _, l := range v.lines {
		if l.KnownDeleted {
			if out == nil {
				out = map[uuid.UUID]bool{}
			}
			out[l.ProductID] = true
		}
	}
	return out
}

// readCart reads the user's cart with its lines' known versions, its holds
// giving a discount now, the stored result of key's request_id (if key is
// not nil) and the mark of the product in fresh (at most one), with one
// query (GetCartView).
func (s *Service) readCart(ctx context.Context, q *cartdb.Queries, user string, key *requestKey, fresh []uuid.UUID) (cartView, error) {
	return s.readCartView(ctx, q, user, key, fresh, true)
}

// readCartView is readCart; withKnown false leaves the lines' KnownVersion
// and KnownDeleted unset (saving an index probe per line).
func (s *Service) readCartView(ctx context.Context, q *cartdb.Queries, user string, key *requestKey, fresh []uuid.UUID, withKnown bool) (cartView, error) {
	now := s.timestamp()
	var mark uuid.UUID // the nil UUID asks for none
	switch len(fresh) {
	case 0:
	case 1:
		mark = fresh[0]
	default:
		return cartView{}, fmt.Errorf("readCart: the marks of %d products asked for, at most one is read", len(fresh))
	}
	r, err := q.GetCartView(ctx, cartdb.GetCartViewParams{
		UserID: user, HoldCutoff: s.holdCutoff(now), Now: now, Fresh: mark,
		RequestID: key.requestID(), RequestCutoff: now.Add(-RequestRetention), WithKnown: withKnown,
	})
	if err != nil {
		return cartView{}, err
	}
	v := cartView{
		revision:    r.CartRevision,
		lines:       make([]cartLine, len(r.LineProductIds)),
		holds:       make([]cartHold, len(r.HoldCodes)),
		marks:       make([]cartdb.GetProductVersionsRow, len(r.MarkIds)),
		fingerprint: r.RequestFingerprint, response: r.RequestResponse,
	}
	for i := range v.lines {
		v.lines[i] = cartLine{
			ProductID: r.LineProductIds[i], Quantity: r.LineQuantities[i], Name: r.LineNames[i],
			UnitPriceMinor: r.LineUnitPrices[i], AddedUnitPriceMinor: r.LineAddedUnitPrices[i],
			CurrencyCode: r.LineCurrencies[i], ProductVersion: r.LineVersions[i], Available: r.LineAvailable[i],
			KnownVersion: r.LineKnownVersions[i], KnownDeleted: r.LineKnownDeleted[i],
		}
	}
	for i := range v.holds {
		v.holds[i] = cartHold{Code: r.HoldCodes[i], PercentOff: r.HoldPercentOffs[i], AmountOffMinor: r.HoldAmountOffs[i], CurrencyCode: r.HoldCurrencies[i]}
	}
	for i := range v.marks {
		v.marks[i] = cartdb.GetProductVersionsRow{ProductID: r.MarkIds[i], Version: r.MarkVersions[i], Deleted: r.MarkDeleted[i]}
	}
	return v, nil
}
