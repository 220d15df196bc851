package productsvc

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/pagetoken"
)

func categoryProto(c productdb.Category) *productv1.Category {
	return &productv1.Category{
		Id:          c.ID.String(),
		Name:        c.Name,
		Description: c.Description,
		Version:     c.Version,
		CreateTime:  timestamppb.New(c.CreateTime),
		UpdateTime:  timestamppb.New(c.UpdateTime),
	}
}

// categoryCursor and productCursor give a row's position in list order.
func categoryCursor(c productdb.Category) pagetoken.Cursor {
	return pagetoken.Cursor{CreateTime: c.CreateTime, Key: c.ID.String()}
}

func productCursor(p productdb.Product) pagetoken.Cursor {
	return pagetoken.Cursor{CreateTime: p.CreateTime, Key: p.ID.String()}
}

func productProto(p productdb.Product) *productv1.Product {
	return &productv1.Product{
		Id:           p.ID.String(),
		Sku:          p.Sku,
		Name:         p.Name,
		Description:  p.Description,
		CategoryId:   p.CategoryID.String(),
		CategoryName: p.CategoryName,
		Price:        &typev1.Money{CurrencyCode: p.CurrencyCode, AmountMinor: p.PriceMinor},
		Version:      p.Version,
		CreateTime:   timestamppb.New(p.CreateTime),
		UpdateTime:   timestamppb.New(p.UpdateTime),
	}
}
