package cartsvc

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// WishlistServer implements shop.cart.v1.WishlistService on the caller's
// own wishlist.
type WishlistServer struct {
	*Service
}

var _ cartv1connect.WishlistServiceHandler = (*WishlistServer)(nil)

// GetWishlist returns the wishlist, newest first, from its snapshots (no
// call to productsvc).
func (s *WishlistServer) GetWishlist(ctx context.Context, req *connect.Request[cartv1.GetWishlistRequest]) (*connect.Response[cartv1.GetWishlistResponse], error) {
	user, err := userID(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.q.ListWishlistItems(ctx, user)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&cartv1.GetWishlistResponse{Wishlist: wishlistView(rows)}), nil
}

// AddWishlistItem adds a product, checked live with productsvc
// (Unavailable if it does not answer, NotFound if the product does not
// exist), with a snapshot of its name and price. Adding it again refreshes
// the snapshot. A wishlist holds at most MaxWishlistItems products
// (ResourceExhausted).
func (s *WishlistServer) AddWishlistItem(ctx context.Context, req *connect.Request[cartv1.AddWishlistItemRequest]) (*connect.Response[cartv1.AddWishlistItemResponse], error) {
	user, c, err := checkUserWrite(ctx, cartv1connect.WishlistServiceAddWishlistItemProcedure, req.Msg)
	if err != nil {
		return nil, err
	}
	id := c.product
	marks, err := s.q.GetProductVersions(ctx, []uuid.UUID{id})
	if err != nil {
		return nil, err
	}
	products, err := s.resolve(ctx, cartView{marks: marks}, []uuid.UUID{id})
	if err != nil {
		return nil, err
	}
	p, err := s.freshProduct(products, id)
	if err != nil {
		return nil, err
	}
	wishlist, err := s.writeWishlist(ctx, user, func(q *cartdb.Queries) error {
		now := s.timestamp()
		has, err := lockWishlistItem(ctx, q, user, id, now)
		if err != nil {
			return err
		}
		if !has {
			n, err := q.CountWishlistItems(ctx, user)
			if err != nil {
				return err
			}
			if n >= MaxWishlistItems {
				return shoperr.ResourceExhausted("a wishlist holds at most %d products", MaxWishlistItems)
			}
		}
		return q.PutWishlistItem(ctx, cartdb.PutWishlistItemParams{
			UserID: user, ProductID: id, Name: p.Name, PriceMinor: p.PriceMinor,
			CurrencyCode: p.Currency, ProductVersion: p.Version, Now: now,
		})
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&cartv1.AddWishlistItemResponse{Wishlist: wishlist}), nil
}

// RemoveWishlistItem removes a product; removing an absent one is a no-op.
func (s *WishlistServer) RemoveWishlistItem(ctx context.Context, req *connect.Request[cartv1.RemoveWishlistItemRequest]) (*connect.Response[cartv1.RemoveWishlistItemResponse], error) {
	user, c, err := checkUserWrite(ctx, cartv1connect.WishlistServiceRemoveWishlistItemProcedure, req.Msg)
	if err != nil {
		return nil, err
	}
	wishlist, err := s.writeWishlist(ctx, user, func(q *cartdb.Queries) error {
		_, err := q.DeleteWishlistItem(ctx, cartdb.DeleteWishlistItemParams{UserID: user, ProductID: c.product})
		return err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&cartv1.RemoveWishlistItemResponse{Wishlist: wishlist}), nil
}

// MoveWishlistItemToCart adds quantity (1..999) of a wishlisted product to
// the cart, as AddCartItem does (live check, same limits), and removes it
// from the wishlist, in one transaction: the wishlist item is gone only if
// the cart line was written. NotFound when the product is not on the
// wishlist. Retry-safe with request_id.
func (s *WishlistServer) MoveWishlistItemToCart(ctx context.Context, req *connect.Request[cartv1.MoveWishlistItemToCartRequest]) (*connect.Response[cartv1.MoveWishlistItemToCartResponse], error) {
	user, c, err := checkUserWrite(ctx, cartv1connect.WishlistServiceMoveWishlistItemToCartProcedure, req.Msg)
	if err != nil {
		return nil, err
	}
	id := c.product
	resp, err := writeCart(ctx, s.Service, user, c.key, []uuid.UUID{id}, func(w *cartWrite) (*cartv1.MoveWishlistItemToCartResponse, error) {
		has, err := lockWishlistItem(ctx, w.q, user, id, w.now)
		if err != nil {
			return nil, err
		}
		if !has {
			return nil, shoperr.NotFound("product %s is not on your wishlist", id)
		}
		if err := w.addLine(id, c.quantity); err != nil {
			return nil, err
		}
		if _, err := w.q.DeleteWishlistItem(ctx, cartdb.DeleteWishlistItemParams{UserID: user, ProductID: id}); err != nil {
			return nil, err
		}
		cart, err := w.cart()
		if err != nil {
			return nil, err
		}
		wishlist, err := listWishlist(ctx, w.q, user)
		if err != nil {
			return nil, err
		}
		return &cartv1.MoveWishlistItemToCartResponse{Cart: cart, Wishlist: wishlist}, nil
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// writeWishlist runs write on the user's wishlist in one transaction and
// returns the wishlist it leaves.
func (s *WishlistServer) writeWishlist(ctx context.Context, user string, write func(q *cartdb.Queries) error) (*cartv1.Wishlist, error) {
	var wishlist *cartv1.Wishlist
	err := s.inTx(ctx, func(q *cartdb.Queries) error {
		if err := write(q); err != nil {
			return err
		}
		var err error
		wishlist, err = listWishlist(ctx, q, user)
		return err
	})
	return wishlist, err
}

// lockWishlistItem locks the user's wishlist row until the transaction
// ends, creating the wishlist at now if there is none (LockWishlist), and
// reports whether it holds product id.
func lockWishlistItem(ctx context.Context, q *cartdb.Queries, user string, id uuid.UUID, now time.Time) (bool, error) {
	if err := q.LockWishlist(ctx, cartdb.LockWishlistParams{UserID: user, Now: now}); err != nil {
		return false, err
	}
	return q.HasWishlistItem(ctx, cartdb.HasWishlistItemParams{UserID: user, ProductID: id})
}

// listWishlist reads the user's wishlist.
func listWishlist(ctx context.Context, q *cartdb.Queries, user string) (*cartv1.Wishlist, error) {
	rows, err := q.ListWishlistItems(ctx, user)
	if err != nil {
		return nil, err
	}
	return wishlistView(rows), nil
}
