package cartsvc_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/cartsvc"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/shoptest"
)

func TestEveryProcedureIsClassified(t *testing.T) {
	t.Parallel()
	procs := auth.Procedures(
		cartv1.File_shop_cart_v1_cart_proto.Services().ByName("CartService"),
		cartv1.File_shop_cart_v1_wishlist_proto.Services().ByName("WishlistService"),
		cartv1.File_shop_cart_v1_promo_code_proto.Services().ByName("PromoCodeService"),
		eventsv1.File_shop_events_v1_event_sink_proto.Services().ByName("EventSinkService"),
		eventsv1.File_shop_events_v1_dead_letter_proto.Services().ByName("DeadLetterService"),
	)
	if len(procs) != 18 {
		t.Fatalf("found %d procedures, want 18", len(procs))
	}
	if err := cartsvc.Rules.Check(procs); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		want := auth.User
		switch {
		case strings.HasPrefix(p, "/shop.cart.v1.PromoCodeService/"), strings.HasPrefix(p, "/shop.events.v1.DeadLetterService/"):
			want = auth.Admin
		case strings.HasPrefix(p, "/shop.events.v1.EventSinkService/"):
			want = auth.Service
		}
		if got := cartsvc.Rules[p]; got != want {
			t.Errorf("%s needs %v, want %v", p, got, want)
		}
	}
}

func TestCartOverEveryProtocol(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, p := range shoptest.Protocols() {
		t.Run(p.Name, func(t *testing.T) {
			prod := b.createProduct(t, "Kettle "+p.Name, 2999)
			carts := b.carts("alice", p)
			if _, err := carts.AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: prod.Id, Quantity: 2})); err != nil {
				t.Fatalf("AddCartItem: %v", err)
			}
			got, err := carts.GetCart(ctx, connect.NewRequest(&cartv1.GetCartRequest{}))
			if err != nil {
				t.Fatalf("GetCart: %v", err)
			}
			var found bool
			for _, it := range got.Msg.Cart.Items {
				if it.ProductId == prod.Id {
					found = it.Quantity == 2 && it.Name == prod.Name && it.LineTotal.GetAmountMinor() == 5998 && it.Available
				}
			}
			if !found || got.Msg.Cart.Stale {
				t.Fatalf("GetCart = %v; want a fresh line of 2 × %s at 29.99", got.Msg.Cart, prod.Name)
			}
		})
	}
}
