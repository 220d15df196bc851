package cartsvc

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/internal/input"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// checkQuantity requires min..MaxQuantity.
func checkQuantity(q, min int32) error {
	if q < min || q > MaxQuantity {
		return shoperr.Invalid("quantity", "must be between %d and %d", min, MaxQuantity)
	}
	return nil
}

var codePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{3,32}$`)

// parseCode returns a promo code in its stored upper-case form; codes are
// matched case-insensitively.
func parseCode(field, s string) (string, error) {
	if !codePattern.MatchString(s) {
		return "", shoperr.Invalid(field, "must be 3 to 32 characters of A-Z, 0-9, '-' or '_'")
	}
	return strings.ToUpper(s), nil
}

// parseID reads field, the id of a product or of an event: a UUID as
// input.UUID accepts it, but not the nil one, which nothing has.
func parseID(field, s string) (uuid.UUID, error) {
	id, err := input.UUID(field, s)
	if err == nil && id == uuid.Nil {
		err = shoperr.Invalid(field, "must not be the nil UUID: no product has it")
	}
	return id, err
}

// checkUserWrite is a user's write: the caller's user id (userID), then
// the checked request (checkWrite).
func checkUserWrite(ctx context.Context, procedure string, req proto.Message) (string, checkedWrite, error) {
	user, err := userID(ctx)
	if err != nil {
		return "", checkedWrite{}, err
	}
	c, err := checkWrite(procedure, req)
	return user, c, err
}

// checkedWrite is a cart or wishlist write request that passed checkWrite:
// the fields its procedure has, parsed.
type checkedWrite struct {
	product  uuid.UUID // product_id
	quantity int32
	code     string      // a promo code, upper case
	key      *requestKey // from request_id; nil without one
}

// checkWrite checks the fields of req, a request of a cart, wishlist or
// promo code write procedure other than CreatePromoCode (see
// checkPromoCode), before anything else is done: product_id must be a
// UUID other than the nil one, quantity within range (0 removes, for UpdateCartItem only), a code
// 3 to 32 characters of A-Z, 0-9, '-' or '_', request_id 1 to 64
// characters without control characters. A bad field is InvalidArgument
// naming it; a request of another type is an error of the caller.
func checkWrite(procedure string, req proto.Message) (checkedWrite, error) {
	var w checkedWrite
	var err error
	product := func(s string) {
		if err == nil {
			w.product, err = parseID("product_id", s)
		}
	}
	quantity := func(q, min int32) {
		if err == nil {
			w.quantity, err = q, checkQuantity(q, min)
		}
	}
	code := func(s string) {
		if err == nil {
			w.code, err = parseCode("code", s)
		}
	}
	key := func(id *string) {
		if err == nil {
			w.key, err = newRequestKey(procedure, id, req)
		}
	}
	switch m := req.(type) {
	case *cartv1.AddCartItemRequest:
		product(m.GetProductId())
		quantity(m.GetQuantity(), 1)
		key(m.RequestId)
	case *cartv1.UpdateCartItemRequest:
		product(m.GetProductId())
		quantity(m.GetQuantity(), 0)
		key(m.RequestId)
	case *cartv1.MoveWishlistItemToCartRequest:
		product(m.GetProductId())
		quantity(m.GetQuantity(), 1)
		key(m.RequestId)
	case *cartv1.RemoveCartItemRequest:
		product(m.GetProductId())
	case *cartv1.AddWishlistItemRequest:
		product(m.GetProductId())
	case *cartv1.RemoveWishlistItemRequest:
		product(m.GetProductId())
	case *cartv1.ApplyPromoCodeRequest:
		code(m.GetCode())
	case *cartv1.RemovePromoCodeRequest:
		code(m.GetCode())
	case *cartv1.DeactivatePromoCodeRequest:
		code(m.GetCode())
	case *cartv1.ClearCartRequest:
	default:
		return w, fmt.Errorf("checkWrite: %T is not a write request", req)
	}
	return w, err
}
