package productsvc

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
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
