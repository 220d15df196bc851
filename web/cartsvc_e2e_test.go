package web_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/decoupledshop/shop/cartsvc"
	cartmigrations "github.com/decoupledshop/shop/cartsvc/migrations"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	"github.com/decoupledshop/shop/internal/migrate"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/shoptest"
)

var cartSchema = pgtest.Schema{
	Name: "cart",
	Role: "cartsvc",
	Migrate: func(ctx context.Context, url string) error {
		return migrate.Up(ctx, url, cartmigrations.FS)
	},
}

// TestStorefrontWithCartsvc is TestStorefrontInBrowser against the real
// cartsvc main: live prices come from productsvc through cartsvc's cache
// (TTL 1s here), the promo code is created as admin.
func TestStorefrontWithCartsvc(t *testing.T) {
	chromium := browserPrereqs(t)
	t.Parallel()
	s := startStack(t, func(t *testing.T, s *stack) (string, string) {
		addr := shoptest.FreeAddr(t)
		env := map[string]string{
			"ADDR":                 addr,
			"DATABASE_URL":         pgtest.NewDatabase(t, cartSchema),
			"OIDC_ISSUER_URL":      s.iss.URL(),
			"DRAIN_DELAY":          "-1s",
			"CORS_ALLOWED_ORIGINS": s.pageURL,
			"PRODUCT_URL":          s.productsURL,
			"PRODUCT_CACHE_TTL":    "1s",
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- cartsvc.Run(ctx, nil, func(k string) string { return env[k] }, io.Discard, t.Output())
		}()
		t.Cleanup(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("cartsvc: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("cartsvc did not stop within 10s")
			}
		})
		base := "http://" + addr
		shoptest.WaitReady(t, base, 20*time.Second, done)
		promos := cartv1connect.NewPromoCodeServiceClient(shoptest.HTTPClient(), base, connect.WithInterceptors(s.admin))
		_, err := promos.CreatePromoCode(t.Context(), connect.NewRequest(&cartv1.CreatePromoCodeRequest{
			Code:     "WELCOME10",
			Discount: &cartv1.CreatePromoCodeRequest_PercentOff{PercentOff: 10},
			EndTime:  timestamppb.New(time.Now().Add(time.Hour)),
		}))
		if err != nil {
			t.Fatalf("create promo code: %v", err)
		}
		return base, "welcome10"
	})
	runBrowser(t, s, chromium, "storefront-cartsvc.png")
}
