package cartsvc

import (
	"context"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// CartServer implements shop.cart.v1.CartService on the caller's own cart.
type CartServer struct {
	*Service
}

var _ cartv1connect.CartServiceHandler = (*CartServer)(nil)

// GetCart returns the cart with live product data where productsvc (or the
// fresh cache) has it; otherwise it answers from older cache entries or the
// line snapshots with stale = true, never with an error about productsvc.
func (s *CartServer) GetCart(ctx context.Context, req *connect.Request[cartv1.GetCartRequest]) (*connect.Response[cartv1.GetCartResponse], error) {
	user, err := userID(ctx)
	if err != nil {
		return nil, err
	}
	view, err := s.readCartForGet(ctx, user)
	if err != nil {
		return nil, err
	}
	products, err := s.lookup(ctx, lineWants(view.lines))
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, ctxErr
	}
	_ = err // lines without product data show their snapshots
	cart, err := buildCart(s.currency, view.lines, view.holds, products)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&cartv1.GetCartResponse{Cart: cart}), nil
}

// AddCartItem adds quantity (1..999) of a product, checked live with
// productsvc (Unavailable if it does not answer, NotFound if the product
// does not exist), to its line or a new one, storing the product's name,
// price and version on the line. Retry-safe with request_id.
func (s *CartServer) AddCartItem(ctx context.Context, req *connect.Request[cartv1.AddCartItemRequest]) (*connect.Response[cartv1.AddCartItemResponse], error) {
	return cartRPC(ctx, s.Service, cartv1connect.CartServiceAddCartItemProcedure, req.Msg, true,
		func(w *cartWrite, c checkedWrite) error { return w.addLine(c.product, c.quantity) },
		func(cart *cartv1.Cart) *cartv1.AddCartItemResponse { return &cartv1.AddCartItemResponse{Cart: cart} })
}

// UpdateCartItem sets a line's quantity (0..999; 0 removes the line, also
// when there is none). NotFound when the cart has no line for the product.
// It needs no product data, so it works while productsvc is down.
// Retry-safe with request_id.
func (s *CartServer) UpdateCartItem(ctx context.Context, req *connect.Request[cartv1.UpdateCartItemRequest]) (*connect.Response[cartv1.UpdateCartItemResponse], error) {
	return cartRPC(ctx, s.Service, cartv1connect.CartServiceUpdateCartItemProcedure, req.Msg, false,
		func(w *cartWrite, c checkedWrite) error {
			if c.quantity == 0 {
				_, err := w.q.DeleteCartLine(ctx, cartdb.DeleteCartLineParams{UserID: w.user, ProductID: c.product})
				return err
			}
			n, err := w.q.SetCartLineQuantity(ctx, cartdb.SetCartLineQuantityParams{UserID: w.user, ProductID: c.product, Quantity: c.quantity, Now: w.now})
			if err == nil && n == 0 {
				err = shoperr.NotFound("product %s is not in your cart", c.product)
			}
			return err
		},
		func(cart *cartv1.Cart) *cartv1.UpdateCartItemResponse {
			return &cartv1.UpdateCartItemResponse{Cart: cart}
		})
}

// RemoveCartItem removes a line; removing an absent line is a no-op.
func (s *CartServer) RemoveCartItem(ctx context.Context, req *connect.Request[cartv1.RemoveCartItemRequest]) (*connect.Response[cartv1.RemoveCartItemResponse], error) {
	return cartRPC(ctx, s.Service, cartv1connect.CartServiceRemoveCartItemProcedure, req.Msg, false,
		func(w *cartWrite, c checkedWrite) error {
			_, err := w.q.DeleteCartLine(ctx, cartdb.DeleteCartLineParams{UserID: w.user, ProductID: c.product})
			return err
		},
		func(cart *cartv1.Cart) *cartv1.RemoveCartItemResponse {
			return &cartv1.RemoveCartItemResponse{Cart: cart}
		})
}

// ClearCart removes every line and releases the promo code hold.
func (s *CartServer) ClearCart(ctx context.Context, req *connect.Request[cartv1.ClearCartRequest]) (*connect.Response[cartv1.ClearCartResponse], error) {
	return cartRPC(ctx, s.Service, cartv1connect.CartServiceClearCartProcedure, req.Msg, false,
		func(w *cartWrite, _ checkedWrite) error {
			if err := w.q.DeleteCartLines(ctx, w.user); err != nil {
				return err
			}
			return w.q.ReleaseCartHolds(ctx, w.user)
		},
		func(cart *cartv1.Cart) *cartv1.ClearCartResponse { return &cartv1.ClearCartResponse{Cart: cart} })
}

// ApplyPromoCode makes the cart hold a promo code (case-insensitive).
// NotFound for an unknown code; FailedPrecondition when the code is
// inactive, outside its validity window, or the cart already holds another
// code (one per cart); ResourceExhausted when max_redemptions carts hold it
// already. Applying the code the cart holds is a no-op. Appliers of one code
// take turns on its row lock, so the limit holds under any concurrency.
func (s *CartServer) ApplyPromoCode(ctx context.Context, req *connect.Request[cartv1.ApplyPromoCodeRequest]) (*connect.Response[cartv1.ApplyPromoCodeResponse], error) {
	return cartRPC(ctx, s.Service, cartv1connect.CartServiceApplyPromoCodeProcedure, req.Msg, false,
		func(w *cartWrite, c checkedWrite) error { return w.applyPromoCode(c.code) },
		func(cart *cartv1.Cart) *cartv1.ApplyPromoCodeResponse {
			return &cartv1.ApplyPromoCodeResponse{Cart: cart}
		})
}

// RemovePromoCode releases the cart's hold of a code; removing a code the
// cart does not hold is a no-op.
func (s *CartServer) RemovePromoCode(ctx context.Context, req *connect.Request[cartv1.RemovePromoCodeRequest]) (*connect.Response[cartv1.RemovePromoCodeResponse], error) {
	return cartRPC(ctx, s.Service, cartv1connect.CartServiceRemovePromoCodeProcedure, req.Msg, false,
		func(w *cartWrite, c checkedWrite) error {
			_, err := w.q.ReleaseHold(ctx, cartdb.ReleaseHoldParams{UserID: w.user, Code: c.code})
			return err
		},
		func(cart *cartv1.Cart) *cartv1.RemovePromoCodeResponse {
			return &cartv1.RemovePromoCodeResponse{Cart: cart}
		})
}

// cartRPC is every cart write RPC: the caller's user id, the request's
// checks (checkWrite for procedure), then writeCart with apply doing the
// write's own part (for the product in the request fetched live when
// fresh), answering respond of the cart the write leaves.
func cartRPC[T any, R interface {
	*T
	proto.Message
}](ctx context.Context, s *Service, procedure string, msg proto.Message, fresh bool,
	apply func(w *cartWrite, c checkedWrite) error, respond func(*cartv1.Cart) R) (*connect.Response[T], error) {
	user, c, err := checkUserWrite(ctx, procedure, msg)
	if err != nil {
		return nil, err
	}
	var live []uuid.UUID
	if fresh {
		live = []uuid.UUID{c.product}
	}
	resp, err := writeCart(ctx, s, user, c.key, live, func(w *cartWrite) (R, error) {
		var zero R
		if err := apply(w, c); err != nil {
			return zero, err
		}
		cart, err := w.cart()
		if err != nil {
			return zero, err
		}
		return respond(cart), nil
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse((*T)(resp)), nil
}
