package devstack

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/internal/devissuer"
)

// demoCatalog is what an empty catalog is seeded with.
var demoCatalog = []struct {
	category, description string
	products              []demoProduct
}{
	{"Shoes", "Everything for your feet", []demoProduct{
		{"SHOE-TRAIL-1", "Trail runner", "Grippy sole for muddy paths.", 8999},
		{"SHOE-CITY-1", "City walker", "Soft leather for long days in town.", 6500},
		{"SHOE-SANDAL-1", "Beach sandal", "Dries in minutes.", 1999},
	}},
	{"Hats", "Sun, rain and style", []demoProduct{
		{"HAT-WOOL-1", "Red wool beanie", "Warm merino wool.", 2450},
		{"HAT-STRAW-1", "Straw sun hat", "Wide brim, light weave.", 3200},
	}},
	{"Bags", "Carry it all", []demoProduct{
		{"BAG-DAY-1", "Day pack", "20 litres, padded laptop sleeve.", 5900},
		{"BAG-TOTE-1", "Canvas tote", "Organic cotton.", 1500},
		{"BAG-DUFFEL-1", "Weekend duffel", "Waxed canvas, leather handles.", 12900},
	}},
}

type demoProduct struct {
	sku, name, description string
	priceMinor             int64
}

// bearer adds an access token to every request of a Connect client.
func bearer(token string) connect.ClientOption {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}))
}

// seed fills an empty catalog with demo data, as admin, through the public
// API. A catalog with any category is left alone, so a second run is fast
// and keeps what the developer changed.
func (s *stack) seed(ctx context.Context) error {
	token, err := s.iss.UserToken(devissuer.DemoAdmin)
	if err != nil {
		return err
	}
	base := baseURL(s.cfg.productsAddr)
	cats := productv1connect.NewCategoryServiceClient(http.DefaultClient, base, bearer(token))
	prods := productv1connect.NewProductServiceClient(http.DefaultClient, base, bearer(token))
	existing, err := cats.ListCategories(ctx, connect.NewRequest(&productv1.ListCategoriesRequest{PageSize: 1}))
	if err != nil {
		return err
	}
	if len(existing.Msg.Categories) > 0 {
		return nil
	}
	if err := s.seedPromoCode(ctx, token); err != nil {
		return err
	}
	for _, c := range demoCatalog {
		cat, err := cats.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: c.category, Description: c.description}))
		if err != nil {
			return fmt.Errorf("category %s: %w", c.category, err)
		}
		for _, p := range c.products {
			if _, err := prods.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
				Sku: p.sku, Name: p.name, Description: p.description, CategoryId: cat.Msg.Category.Id,
				Price: &typev1.Money{CurrencyCode: "EUR", AmountMinor: p.priceMinor},
			})); err != nil {
				return fmt.Errorf("product %s: %w", p.sku, err)
			}
		}
	}
	return nil
}

// DemoPromoCode is the promo code seeded with the demo catalog: 10% off,
// valid for a year from the first start.
const DemoPromoCode = "WELCOME10"

func (s *stack) seedPromoCode(ctx context.Context, adminToken string) error {
	promos := cartv1connect.NewPromoCodeServiceClient(http.DefaultClient, baseURL(s.cfg.cartAddr), bearer(adminToken))
	now := time.Now()
	_, err := promos.CreatePromoCode(ctx, connect.NewRequest(&cartv1.CreatePromoCodeRequest{
		Code:      DemoPromoCode,
		Discount:  &cartv1.CreatePromoCodeRequest_PercentOff{PercentOff: 10},
		StartTime: timestamppb.New(now),
		EndTime:   timestamppb.New(now.AddDate(1, 0, 0)),
	}))
	if connect.CodeOf(err) == connect.CodeAlreadyExists {
		return nil
	}
	if err != nil {
		return fmt.Errorf("promo code %s: %w", DemoPromoCode, err)
	}
	return nil
}
