package cartsvc

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/internal/money"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// fuzzedWrites are the write procedures FuzzWriteRequests picks from by
// index, each with a new request message.
var fuzzedWrites = []struct {
	procedure string
	request   func() proto.Message
}{
	{cartv1connect.CartServiceAddCartItemProcedure, func() proto.Message { return new(cartv1.AddCartItemRequest) }},
	{cartv1connect.CartServiceUpdateCartItemProcedure, func() proto.Message { return new(cartv1.UpdateCartItemRequest) }},
	{cartv1connect.CartServiceRemoveCartItemProcedure, func() proto.Message { return new(cartv1.RemoveCartItemRequest) }},
	{cartv1connect.CartServiceClearCartProcedure, func() proto.Message { return new(cartv1.ClearCartRequest) }},
	{cartv1connect.CartServiceApplyPromoCodeProcedure, func() proto.Message { return new(cartv1.ApplyPromoCodeRequest) }},
	{cartv1connect.CartServiceRemovePromoCodeProcedure, func() proto.Message { return new(cartv1.RemovePromoCodeRequest) }},
	{cartv1connect.WishlistServiceAddWishlistItemProcedure, func() proto.Message { return new(cartv1.AddWishlistItemRequest) }},
	{cartv1connect.WishlistServiceRemoveWishlistItemProcedure, func() proto.Message { return new(cartv1.RemoveWishlistItemRequest) }},
	{cartv1connect.WishlistServiceMoveWishlistItemToCartProcedure, func() proto.Message { return new(cartv1.MoveWishlistItemToCartRequest) }},
	{cartv1connect.PromoCodeServiceDeactivatePromoCodeProcedure, func() proto.Message { return new(cartv1.DeactivatePromoCodeRequest) }},
	{cartv1connect.PromoCodeServiceCreatePromoCodeProcedure, func() proto.Message { return new(cartv1.CreatePromoCodeRequest) }},
}

// FuzzWriteRequests feeds every cart, wishlist and promo code write
// request, as protobuf bytes, to the checks its handler runs before
// anything else: they never panic, refuse only with InvalidArgument naming
// a field, and what they accept is within the rules.
func FuzzWriteRequests(f *testing.F) {
	s := &Service{currency: "EUR"}
	now := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		w := fuzzedWrites[int(which)%len(fuzzedWrites)]
		req := w.request()
		if proto.Unmarshal(body, req) != nil {
			return // Connect answers InvalidArgument before any handler
		}
		if m, ok := req.(*cartv1.CreatePromoCodeRequest); ok {
			p, err := s.checkPromoCode(m, now)
			if err != nil {
				requireInvalid(t, err)
				return
			}
			if !codePattern.MatchString(p.Code) || p.Code != strings.ToUpper(p.Code) || p.PercentOff.Valid == p.AmountOffMinor.Valid ||
				!p.EndTime.After(p.StartTime) || !p.EndTime.After(now) || p.MaxRedemptions < 0 ||
				(p.AmountOffMinor.Valid && (p.AmountOffMinor.Int64 < 1 || p.AmountOffMinor.Int64 > money.MaxPriceMinor)) {
				t.Fatalf("CreatePromoCode accepted %v as %+v", m, p)
			}
			return
		}
		c, err := checkWrite(w.procedure, req)
		if err != nil {
			requireInvalid(t, err)
			return
		}
		fields := req.ProtoReflect().Descriptor().Fields()
		switch {
		case fields.ByName("product_id") != nil && c.product == uuid.Nil:
			t.Fatalf("%s accepted %v without a product", w.procedure, req)
		case fields.ByName("quantity") != nil && (c.quantity < 0 || c.quantity > MaxQuantity):
			t.Fatalf("%s accepted quantity %d", w.procedure, c.quantity)
		case fields.ByName("code") != nil && (!codePattern.MatchString(c.code) || c.code != strings.ToUpper(c.code)):
			t.Fatalf("%s accepted code %q", w.procedure, c.code)
		case c.key != nil && (c.key.id == "" || !utf8.ValidString(c.key.id) || len(c.key.fingerprint) == 0):
			t.Fatalf("%s accepted request_id %q", w.procedure, c.key.id)
		}
	})
}

// requireInvalid fails t unless err is InvalidArgument naming a field.
func requireInvalid(t *testing.T, err error) {
	t.Helper()
	var se *shoperr.Error
	if !errors.As(err, &se) || se.Code != shoperr.CodeInvalid || se.Field == "" {
		t.Fatalf("refused with %v (%T); want InvalidArgument naming a field", err, err)
	}
}

// FuzzEventChecks feeds DeliverEvents requests, as protobuf bytes, to the
// checks the receiver runs on each event before the database: they never
// panic; an accepted event is one the database stores as it is (text
// without control characters, versions, prices and ids within the rules);
// a refused one gets a reason, and the dead letter's texts are storable.
func FuzzEventChecks(f *testing.F) {
	s := &Service{currency: "EUR"}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req eventsv1.DeliverEventsRequest
		if proto.Unmarshal(body, &req) != nil {
			return // Connect answers InvalidArgument; the relay splits the batch
		}
		for _, ev := range req.GetEvents() {
			e, reason := s.checkEvent(ev)
			if reason != "" {
				stored := storedText(ev.GetType(), maxStoredType)
				if textProblem(reason, len(reason)) != "" || textProblem(stored, len(stored)) != "" || len(stored) > maxStoredType {
					t.Fatalf("dead letter of %v: reason %q, type %q; want storable texts", ev, reason, stored)
				}
				continue
			}
			if textProblem(ev.GetType(), maxStoredType) != "" || e.id == uuid.Nil {
				t.Fatalf("accepted %v with an unstorable type or id", ev)
			}
			switch e.kind {
			case kindProductChanged:
				if textProblem(e.name, maxName) != "" || e.name == "" || e.price < 0 || e.price > money.MaxPriceMinor || e.currency != "EUR" {
					t.Fatalf("accepted ProductChanged %v as %+v", ev, e)
				}
				fallthrough
			case kindProductDeleted, kindCategoryChanged:
				if !e.aggregate.Valid || e.version < 1 {
					t.Fatalf("accepted %v without its aggregate and version", ev)
				}
			}
		}
	})
}
