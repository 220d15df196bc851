// Package cartsvc is the cart service: each user's own cart and wishlist,
// and the promo codes admins manage, on its own database. Product data
// comes from productsvc through the cached, breaker-protected client in
// package productclient and is kept on cart lines as a snapshot, so the cart can
// still be shown while productsvc is down.
package cartsvc

import (
	"net/http"
	"slices"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/deadletter"
	"github.com/decoupledshop/shop/internal/server"
)

// Rules classifies every procedure cartsvc serves: carts and wishlists are
// each user's own (user tokens only), promo codes and dead letters are
// managed by admins, and events are delivered by services (service tokens
// with the events:write scope only). Anything else is refused by the auth
// middleware.
var Rules = auth.Rules{
	cartv1connect.CartServiceGetCartProcedure:         auth.User,
	cartv1connect.CartServiceAddCartItemProcedure:     auth.User,
	cartv1connect.CartServiceUpdateCartItemProcedure:  auth.User,
	cartv1connect.CartServiceRemoveCartItemProcedure:  auth.User,
	cartv1connect.CartServiceClearCartProcedure:       auth.User,
	cartv1connect.CartServiceApplyPromoCodeProcedure:  auth.User,
	cartv1connect.CartServiceRemovePromoCodeProcedure: auth.User,

	cartv1connect.WishlistServiceGetWishlistProcedure:            auth.User,
	cartv1connect.WishlistServiceAddWishlistItemProcedure:        auth.User,
	cartv1connect.WishlistServiceRemoveWishlistItemProcedure:     auth.User,
	cartv1connect.WishlistServiceMoveWishlistItemToCartProcedure: auth.User,

	cartv1connect.PromoCodeServiceCreatePromoCodeProcedure:     auth.Admin,
	cartv1connect.PromoCodeServiceListPromoCodesProcedure:      auth.Admin,
	cartv1connect.PromoCodeServiceDeactivatePromoCodeProcedure: auth.Admin,

	eventsv1connect.EventSinkServiceDeliverEventsProcedure: auth.Service,

	eventsv1connect.DeadLetterServiceListDeadLettersProcedure:   auth.Admin,
	eventsv1connect.DeadLetterServiceReplayDeadLettersProcedure: auth.Admin,
	eventsv1connect.DeadLetterServicePurgeDeadLettersProcedure:  auth.Admin,
}

// Mount registers CartService, WishlistService, PromoCodeService,
// EventSinkService and the inbox's DeadLetterService on srv, behind token
// verification with Rules, with the hardened handler options opts (and
// for carts and wishlists the per-user limits of Options.Users), and the
// event counters on srv's metrics registry.
func Mount(srv *server.Server, opts []connect.HandlerOption, verifier *auth.Verifier, svc *Service) {
	guard := func(path string, h http.Handler) {
		srv.Handle(path, auth.Middleware(verifier, Rules, h))
	}
	userOpts := append(slices.Clip(opts), connect.WithInterceptors(svc.fairness.interceptor()))
	guard(cartv1connect.NewCartServiceHandler(&CartServer{svc}, userOpts...))
	guard(cartv1connect.NewWishlistServiceHandler(&WishlistServer{svc}, userOpts...))
	guard(cartv1connect.NewPromoCodeServiceHandler(&PromoCodeServer{svc}, opts...))
	guard(eventsv1connect.NewEventSinkServiceHandler(&EventSinkServer{svc}, opts...))
	guard(eventsv1connect.NewDeadLetterServiceHandler(deadletter.NewServer(deadLetterScope, deadLetters{svc}), opts...))
	srv.RegisterServiceNames(cartv1connect.CartServiceName, cartv1connect.WishlistServiceName, cartv1connect.PromoCodeServiceName,
		eventsv1connect.EventSinkServiceName, eventsv1connect.DeadLetterServiceName)
	srv.Registry().MustRegister(svc.metrics.collectors()...)
	srv.Registry().MustRegister(svc.observerCollectors()...)
}
