package cartsvc

import (
	"context"

	"connectrpc.com/connect"
	"github.com/google/uuid"

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
	view, err := s.readCart(ctx, s.q, user, nil, nil)
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
	user, err := userID(ctx)
	if err != nil {
		return nil, err
	}
	c, err := checkWrite(cartv1connect.CartServiceAddCartItemProcedure, req.Msg)
	if err != nil {
		return nil, err
	}
	resp, err := writeCart(ctx, s.Service, user, c.key, []uuid.UUID{c.product}, func(w *cartWrite) (*cartv1.AddCartItemResponse, error) {
		if err := w.addLine(c.product, c.quantity); err != nil {
			return nil, err
		}
		cart, err := w.cart()
		return &cartv1.AddCartItemResponse{Cart: cart}, err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// UpdateCartItem sets a line's quantity (0..999; 0 removes the line, also
// when there is none). NotFound when the cart has no line for the product.
// It needs no product data, so it works while productsvc is down.
// Retry-safe with request_id.
func (s *CartServer) UpdateCartItem(ctx context.Context, req *connect.Request[cartv1.UpdateCartItemRequest]) (*connect.Response[cartv1.UpdateCartItemResponse], error) {
	user, err := userID(ctx)
	if err != nil {
		return nil, err
	}
	c, err := checkWrite(cartv1connect.CartServiceUpdateCartItemProcedure, req.Msg)
	if err != nil {
		return nil, err
	}
	id := c.product
	resp, err := writeCart(ctx, s.Service, user, c.key, nil, func(w *cartWrite) (*cartv1.UpdateCartItemResponse, error) {
		if c.quantity == 0 {
			if _, err := w.q.DeleteCartLine(ctx, cartdb.DeleteCartLineParams{UserID: user, ProductID: id}); err != nil {
				return nil, err
			}
		} else {
			n, err := w.q.SetCartLineQuantity(ctx, cartdb.SetCartLineQuantityParams{UserID: user, ProductID: id, Quantity: c.quantity, Now: w.now})
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return nil, shoperr.NotFound("product %s is not in your cart", id)
			}
		}
		cart, err := w.cart()
		return &cartv1.UpdateCartItemResponse{Cart: cart}, err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// RemoveCartItem removes a line; removing an absent line is a no-op.
func (s *CartServer) RemoveCartItem(ctx context.Context, req *connect.Request[cartv1.RemoveCartItemRequest]) (*connect.Response[cartv1.RemoveCartItemResponse], error) {
	user, err := userID(ctx)
	if err != nil {
		return nil, err
	}
	c, err := checkWrite(cartv1connect.CartServiceRemoveCartItemProcedure, req.Msg)
	if err != nil {
		return nil, err
	}
	resp, err := writeCart(ctx, s.Service, user, nil, nil, func(w *cartWrite) (*cartv1.RemoveCartItemResponse, error) {
		if _, err := w.q.DeleteCartLine(ctx, cartdb.DeleteCartLineParams{UserID: user, ProductID: c.product}); err != nil {
			return nil, err
		}
		cart, err := w.cart()
		return &cartv1.RemoveCartItemResponse{Cart: cart}, err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// ClearCart removes every line and releases the promo code hold.
func (s *CartServer) ClearCart(ctx context.Context, req *connect.Request[cartv1.ClearCartRequest]) (*connect.Response[cartv1.ClearCartResponse], error) {
	user, err := userID(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := writeCart(ctx, s.Service, user, nil, nil, func(w *cartWrite) (*cartv1.ClearCartResponse, error) {
		if err := w.q.DeleteCartLines(ctx, user); err != nil {
			return nil, err
		}
		if err := w.q.ReleaseCartHolds(ctx, user); err != nil {
			return nil, err
		}
		cart, err := w.cart()
		return &cartv1.ClearCartResponse{Cart: cart}, err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// ApplyPromoCode makes the cart hold a promo code (case-insensitive).
// NotFound for an unknown code; FailedPrecondition when the code is
// inactive, outside its validity window, or the cart already holds another
// code (one per cart); ResourceExhausted when max_redemptions carts hold it
// already. Applying the code the cart holds is a no-op. Appliers of one code
// take turns on its row lock, so the limit holds under any concurrency.
func (s *CartServer) ApplyPromoCode(ctx context.Context, req *connect.Request[cartv1.ApplyPromoCodeRequest]) (*connect.Response[cartv1.ApplyPromoCodeResponse], error) {
	user, err := userID(ctx)
	if err != nil {
		return nil, err
	}
	c, err := checkWrite(cartv1connect.CartServiceApplyPromoCodeProcedure, req.Msg)
	if err != nil {
		return nil, err
	}
	resp, err := writeCart(ctx, s.Service, user, nil, nil, func(w *cartWrite) (*cartv1.ApplyPromoCodeResponse, error) {
		if err := w.applyPromoCode(c.code); err != nil {
			return nil, err
		}
		cart, err := w.cart()
		return &cartv1.ApplyPromoCodeResponse{Cart: cart}, err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// RemovePromoCode releases the cart's hold of a code; removing a code the
// cart does not hold is a no-op.
func (s *CartServer) RemovePromoCode(ctx context.Context, req *connect.Request[cartv1.RemovePromoCodeRequest]) (*connect.Response[cartv1.RemovePromoCodeResponse], error) {
	user, err := userID(ctx)
	if err != nil {
		return nil, err
	}
	c, err := checkWrite(cartv1connect.CartServiceRemovePromoCodeProcedure, req.Msg)
	if err != nil {
		return nil, err
	}
	resp, err := writeCart(ctx, s.Service, user, nil, nil, func(w *cartWrite) (*cartv1.RemovePromoCodeResponse, error) {
		if _, err := w.q.ReleaseHold(ctx, cartdb.ReleaseHoldParams{UserID: user, Code: c.code}); err != nil {
			return nil, err
		}
		cart, err := w.cart()
		return &cartv1.RemovePromoCodeResponse{Cart: cart}, err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}
