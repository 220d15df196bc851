package web_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/server"
)

// fakeCart is a stand-in for cartsvc that speaks the shop.cart.v1
// CartService and WishlistService contract from memory, with live prices
// from productsvc (BatchGetProducts), so the browser test can drive the
// storefront's cart before cartsvc exists. It knows one promo code,
// fakePromoCode (10% off). Replace it with the real cartsvc once it lands.
type fakeCart struct {
	products productv1connect.ProductServiceClient

	mu    sync.Mutex
	users map[string]*fakeUser // by token subject
}

const fakePromoCode = "WELCOME10"

type fakeUser struct {
	lines    []fakeLine
	promo    string
	wishlist []*cartv1.WishlistItem
}

type fakeLine struct {
	productID string
	quantity  int32
	added     *typev1.Money
}

var fakeCartRules = auth.Rules{
	cartv1connect.CartServiceGetCartProcedure:                    auth.User,
	cartv1connect.CartServiceAddCartItemProcedure:                auth.User,
	cartv1connect.CartServiceUpdateCartItemProcedure:             auth.User,
	cartv1connect.CartServiceRemoveCartItemProcedure:             auth.User,
	cartv1connect.CartServiceClearCartProcedure:                  auth.User,
	cartv1connect.CartServiceApplyPromoCodeProcedure:             auth.User,
	cartv1connect.CartServiceRemovePromoCodeProcedure:            auth.User,
	cartv1connect.WishlistServiceGetWishlistProcedure:            auth.User,
	cartv1connect.WishlistServiceAddWishlistItemProcedure:        auth.User,
	cartv1connect.WishlistServiceRemoveWishlistItemProcedure:     auth.User,
	cartv1connect.WishlistServiceMoveWishlistItemToCartProcedure: auth.User,
}

// mount registers both services on srv behind token verification.
func (f *fakeCart) mount(srv *server.Server, opts []connect.HandlerOption, v *auth.Verifier) {
	guard := func(path string, h http.Handler) { srv.Handle(path, auth.Middleware(v, fakeCartRules, h)) }
	guard(cartv1connect.NewCartServiceHandler(fakeCartServer{f}, opts...))
	guard(cartv1connect.NewWishlistServiceHandler(fakeWishlistServer{f}, opts...))
}

// user returns the caller's state; f.mu must be held.
func (f *fakeCart) user(ctx context.Context) *fakeUser {
	id, _ := auth.FromContext(ctx)
	if f.users == nil {
		f.users = map[string]*fakeUser{}
	}
	u := f.users[id.Subject]
	if u == nil {
		u = &fakeUser{}
		f.users[id.Subject] = u
	}
	return u
}

func (f *fakeCart) product(ctx context.Context, id string) (*productv1.Product, error) {
	res, err := f.products.GetProduct(ctx, connect.NewRequest(&productv1.GetProductRequest{Id: id}))
	if err != nil {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("product_id: no such product"))
	}
	return res.Msg.GetProduct(), nil
}

// view builds the cart with live prices; f.mu must be held.
func (f *fakeCart) view(ctx context.Context, u *fakeUser) (*cartv1.Cart, error) {
	ids := make([]string, len(u.lines))
	for i, l := range u.lines {
		ids[i] = l.productID
	}
	live := map[string]*productv1.Product{}
	if len(ids) > 0 {
		res, err := f.products.BatchGetProducts(ctx, connect.NewRequest(&productv1.BatchGetProductsRequest{Ids: ids}))
		if err != nil {
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("catalog unreachable"))
		}
		for _, p := range res.Msg.GetProducts() {
			live[p.GetId()] = p
		}
	}
	eur := func(n int64) *typev1.Money { return &typev1.Money{CurrencyCode: "EUR", AmountMinor: n} }
	cart := &cartv1.Cart{}
	var subtotal int64
	for _, l := range u.lines {
		item := &cartv1.CartItem{ProductId: l.productID, Quantity: l.quantity, AddedUnitPrice: l.added, LineTotal: eur(0)}
		if p, ok := live[l.productID]; ok {
			item.Name, item.UnitPrice, item.Available = p.GetName(), p.GetPrice(), true
			item.PriceChanged = !proto.Equal(p.GetPrice(), l.added)
			item.LineTotal = eur(p.GetPrice().GetAmountMinor() * int64(l.quantity))
			subtotal += item.LineTotal.GetAmountMinor()
		}
		cart.Items = append(cart.Items, item)
	}
	var discount int64
	if u.promo != "" {
		discount = subtotal / 10
		cart.PromoCodes = []*cartv1.AppliedPromoCode{{Code: u.promo, Discount: eur(discount)}}
	}
	cart.Subtotal, cart.Discount, cart.Total = eur(subtotal), eur(discount), eur(subtotal-discount)
	return cart, nil
}

// add adds quantity of a product to the caller's cart; f.mu must be held.
func (f *fakeCart) add(ctx context.Context, u *fakeUser, productID string, quantity int32) error {
	if quantity < 1 || quantity > 999 {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("quantity: must be 1..999"))
	}
	p, err := f.product(ctx, productID)
	if err != nil {
		return err
	}
	for i := range u.lines {
		if u.lines[i].productID == productID {
			u.lines[i].quantity += quantity
			return nil
		}
	}
	u.lines = append(u.lines, fakeLine{productID: productID, quantity: quantity, added: p.GetPrice()})
	return nil
}

type fakeCartServer struct{ f *fakeCart }

// respond runs change on the caller's state under the lock and answers
// with the resulting cart.
func respond[Res any](ctx context.Context, f *fakeCart, change func(*fakeUser) error, wrap func(*cartv1.Cart) *Res) (*connect.Response[Res], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.user(ctx)
	if err := change(u); err != nil {
		return nil, err
	}
	cart, err := f.view(ctx, u)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(wrap(cart)), nil
}

func (s fakeCartServer) GetCart(ctx context.Context, _ *connect.Request[cartv1.GetCartRequest]) (*connect.Response[cartv1.GetCartResponse], error) {
	return respond(ctx, s.f, func(*fakeUser) error { return nil }, func(c *cartv1.Cart) *cartv1.GetCartResponse { return &cartv1.GetCartResponse{Cart: c} })
}

func (s fakeCartServer) AddCartItem(ctx context.Context, req *connect.Request[cartv1.AddCartItemRequest]) (*connect.Response[cartv1.AddCartItemResponse], error) {
	return respond(ctx, s.f, func(u *fakeUser) error { return s.f.add(ctx, u, req.Msg.GetProductId(), req.Msg.GetQuantity()) },
		func(c *cartv1.Cart) *cartv1.AddCartItemResponse { return &cartv1.AddCartItemResponse{Cart: c} })
}

func (s fakeCartServer) UpdateCartItem(ctx context.Context, req *connect.Request[cartv1.UpdateCartItemRequest]) (*connect.Response[cartv1.UpdateCartItemResponse], error) {
	return respond(ctx, s.f, func(u *fakeUser) error {
		q := req.Msg.GetQuantity()
		if q < 0 || q > 999 {
			return connect.NewError(connect.CodeInvalidArgument, errors.New("quantity: must be 0..999"))
		}
		for i := range u.lines {
			if u.lines[i].productID == req.Msg.GetProductId() {
				u.lines[i].quantity = q
			}
		}
		u.lines = slices.DeleteFunc(u.lines, func(l fakeLine) bool { return l.quantity == 0 })
		return nil
	}, func(c *cartv1.Cart) *cartv1.UpdateCartItemResponse { return &cartv1.UpdateCartItemResponse{Cart: c} })
}

func (s fakeCartServer) RemoveCartItem(ctx context.Context, req *connect.Request[cartv1.RemoveCartItemRequest]) (*connect.Response[cartv1.RemoveCartItemResponse], error) {
	return respond(ctx, s.f, func(u *fakeUser) error {
		u.lines = slices.DeleteFunc(u.lines, func(l fakeLine) bool { return l.productID == req.Msg.GetProductId() })
		return nil
	}, func(c *cartv1.Cart) *cartv1.RemoveCartItemResponse { return &cartv1.RemoveCartItemResponse{Cart: c} })
}

func (s fakeCartServer) ClearCart(ctx context.Context, _ *connect.Request[cartv1.ClearCartRequest]) (*connect.Response[cartv1.ClearCartResponse], error) {
	return respond(ctx, s.f, func(u *fakeUser) error { u.lines, u.promo = nil, ""; return nil },
		func(c *cartv1.Cart) *cartv1.ClearCartResponse { return &cartv1.ClearCartResponse{Cart: c} })
}

func (s fakeCartServer) ApplyPromoCode(ctx context.Context, req *connect.Request[cartv1.ApplyPromoCodeRequest]) (*connect.Response[cartv1.ApplyPromoCodeResponse], error) {
	return respond(ctx, s.f, func(u *fakeUser) error {
		if strings.ToUpper(req.Msg.GetCode()) != fakePromoCode {
			return connect.NewError(connect.CodeNotFound, errors.New("code: no such promo code"))
		}
		u.promo = fakePromoCode
		return nil
	}, func(c *cartv1.Cart) *cartv1.ApplyPromoCodeResponse { return &cartv1.ApplyPromoCodeResponse{Cart: c} })
}

func (s fakeCartServer) RemovePromoCode(ctx context.Context, _ *connect.Request[cartv1.RemovePromoCodeRequest]) (*connect.Response[cartv1.RemovePromoCodeResponse], error) {
	return respond(ctx, s.f, func(u *fakeUser) error { u.promo = ""; return nil },
		func(c *cartv1.Cart) *cartv1.RemovePromoCodeResponse { return &cartv1.RemovePromoCodeResponse{Cart: c} })
}

type fakeWishlistServer struct{ f *fakeCart }

func (s fakeWishlistServer) wishlist(ctx context.Context, change func(*fakeUser) error) (*cartv1.Wishlist, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	u := s.f.user(ctx)
	if err := change(u); err != nil {
		return nil, err
	}
	return &cartv1.Wishlist{Items: slices.Clone(u.wishlist)}, nil
}

func (s fakeWishlistServer) GetWishlist(ctx context.Context, _ *connect.Request[cartv1.GetWishlistRequest]) (*connect.Response[cartv1.GetWishlistResponse], error) {
	w, err := s.wishlist(ctx, func(*fakeUser) error { return nil })
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&cartv1.GetWishlistResponse{Wishlist: w}), nil
}

func (s fakeWishlistServer) AddWishlistItem(ctx context.Context, req *connect.Request[cartv1.AddWishlistItemRequest]) (*connect.Response[cartv1.AddWishlistItemResponse], error) {
	w, err := s.wishlist(ctx, func(u *fakeUser) error {
		if slices.ContainsFunc(u.wishlist, func(i *cartv1.WishlistItem) bool { return i.GetProductId() == req.Msg.GetProductId() }) {
			return nil
		}
		p, err := s.f.product(ctx, req.Msg.GetProductId())
		if err != nil {
			return err
		}
		u.wishlist = append(u.wishlist, &cartv1.WishlistItem{ProductId: p.GetId(), Name: p.GetName(), Price: p.GetPrice(), Available: true})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&cartv1.AddWishlistItemResponse{Wishlist: w}), nil
}

func (s fakeWishlistServer) RemoveWishlistItem(ctx context.Context, req *connect.Request[cartv1.RemoveWishlistItemRequest]) (*connect.Response[cartv1.RemoveWishlistItemResponse], error) {
	w, err := s.wishlist(ctx, func(u *fakeUser) error {
		u.wishlist = slices.DeleteFunc(u.wishlist, func(i *cartv1.WishlistItem) bool { return i.GetProductId() == req.Msg.GetProductId() })
		return nil
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&cartv1.RemoveWishlistItemResponse{Wishlist: w}), nil
}

func (s fakeWishlistServer) MoveWishlistItemToCart(ctx context.Context, req *connect.Request[cartv1.MoveWishlistItemToCartRequest]) (*connect.Response[cartv1.MoveWishlistItemToCartResponse], error) {
	var cart *cartv1.Cart
	w, err := s.wishlist(ctx, func(u *fakeUser) error {
		if err := s.f.add(ctx, u, req.Msg.GetProductId(), req.Msg.GetQuantity()); err != nil {
			return err
		}
		u.wishlist = slices.DeleteFunc(u.wishlist, func(i *cartv1.WishlistItem) bool { return i.GetProductId() == req.Msg.GetProductId() })
		var err error
		cart, err = s.f.view(ctx, u)
		return err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&cartv1.MoveWishlistItemToCartResponse{Cart: cart, Wishlist: w}), nil
}
