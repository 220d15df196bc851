package productsvc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/input"
	"github.com/decoupledshop/shop/internal/money"
	"github.com/decoupledshop/shop/internal/pagetoken"
	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// ProductServer implements shop.product.v1.ProductService.
type ProductServer struct {
	*Store
}

var _ productv1connect.ProductServiceHandler = (*ProductServer)(nil)

const skuIndex = "products_sku_key"

func skuTaken(sku string) error {
	return shoperr.AlreadyExists("a product with sku %q already exists", sku)
}

// CreateProduct creates a product in an existing category, locking the
// category FOR SHARE until the product commits (in the one INSERT).
func (s *ProductServer) CreateProduct(ctx context.Context, req *connect.Request[productv1.CreateProductRequest]) (*connect.Response[productv1.CreateProductResponse], error) {
	m := req.Msg
	if err := checkSKU("sku", m.GetSku()); err != nil {
		return nil, err
	}
	if err := checkName("name", m.GetName(), maxProductName); err != nil {
		return nil, err
	}
	if err := checkText("description", m.GetDescription(), maxProductDescription); err != nil {
		return nil, err
	}
	categoryID, err := input.UUID("category_id", m.GetCategoryId())
	if err != nil {
		return nil, err
	}
	price, err := s.currency.CheckPrice("price", m.GetPrice())
	if err != nil {
		return nil, err
	}
	var p productdb.Product
	resp, err := writeOnce(ctx, s.Store, productv1connect.ProductServiceCreateProductProcedure, req.Msg.RequestId, req.Msg, then(func(tx pgx.Tx, q *productdb.Queries) error {
		var err error
		p, err = q.CreateProduct(ctx, productdb.CreateProductParams{
			ID: s.newID(), Sku: m.GetSku(), Name: m.GetName(), Description: m.GetDescription(),
			CategoryID: categoryID, PriceMinor: price, CurrencyCode: string(s.currency),
			CreateTime: s.timestamp(),
		})
		switch {
		case pgdb.IsUniqueViolation(err, skuIndex):
			return skuTaken(m.GetSku())
		case errors.Is(err, pgx.ErrNoRows):
			return noCategory("category_id", categoryID)
		case err != nil:
			return err
		}
		return s.events.ProductsChanged(ctx, tx, []productdb.Product{p})
	}, func() *productv1.CreateProductResponse {
		return &productv1.CreateProductResponse{Product: productProto(p)}
	}))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// GetProduct returns one product; NotFound once deleted.
func (s *ProductServer) GetProduct(ctx context.Context, req *connect.Request[productv1.GetProductRequest]) (*connect.Response[productv1.GetProductResponse], error) {
	id, err := input.UUID("id", req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	p, err := s.product(ctx, id)
	if err != nil {
		return nil, notFound(err, "product", id)
	}
	return connect.NewResponse(&productv1.GetProductResponse{Product: productProto(p)}), nil
}

// BatchGetProducts returns up to 100 products with one query, in request
// order; deleted and unknown ids go to missing_ids. Repeated ids are
// answered once.
func (s *ProductServer) BatchGetProducts(ctx context.Context, req *connect.Request[productv1.BatchGetProductsRequest]) (*connect.Response[productv1.BatchGetProductsResponse], error) {
	raw := req.Msg.GetIds()
	if len(raw) == 0 {
		return nil, shoperr.Invalid("ids", "must name at least one product")
	}
	if len(raw) > maxBatchGet {
		return nil, shoperr.Invalid("ids", "must name at most %d products, got %d", maxBatchGet, len(raw))
	}
	ids := make([]uuid.UUID, 0, len(raw))
	seen := make(map[uuid.UUID]bool, len(raw))
	for i, r := range raw {
		id, err := input.UUID(fmt.Sprintf("ids[%d]", i), r)
		if err != nil {
			return nil, err
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	rows, err := s.q.BatchGetProducts(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[uuid.UUID]productdb.Product, len(rows))
	for _, p := range rows {
		byID[p.ID] = p
	}
	resp := &productv1.BatchGetProductsResponse{Products: make([]*productv1.Product, 0, len(rows))}
	for _, id := range ids {
		if p, ok := byID[id]; ok {
			resp.Products = append(resp.Products, productProto(p))
		} else {
			resp.MissingIds = append(resp.MissingIds, id.String())
		}
	}
	return connect.NewResponse(resp), nil
}

// ListProducts pages through products in (create_time desc, id) order with
// optional filters; page tokens are bound to the filters. Each shape of
// filter runs a statement of its own (see queries/product/products.sql).
// With a read cache (Store.EnableReadCache) a page is answered from memory
// until any product changes on any replica.
func (s *ProductServer) ListProducts(ctx context.Context, req *connect.Request[productv1.ListProductsRequest]) (*connect.Response[productv1.ListProductsResponse], error) {
	resp, err := s.cachedList(req.Msg, func() (*productv1.ListProductsResponse, error) { return s.listProducts(ctx, req.Msg) })
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// listProducts reads the page m asks for from the database.
func (s *ProductServer) listProducts(ctx context.Context, m *productv1.ListProductsRequest) (*productv1.ListProductsResponse, error) {
	f, filters, err := listFilters(m)
	if err != nil {
		return nil, err
	}
	rows, next, err := pagetoken.List(m.GetPageSize(), m.GetPageToken(), filters,
		func(after pagetoken.Cursor, limit int32) ([]productdb.Product, error) {
			if f.AfterID, err = after.KeyUUID(); err != nil {
				return nil, err
			}
			f.AfterTime, f.PageLimit = after.CreateTime, limit
			switch {
			case f.Query != "":
				return s.planned.SearchProducts(ctx, f)
			case f.CategoryID.Valid:
				return s.q.ListCategoryProducts(ctx, productdb.ListCategoryProductsParams{
					CategoryID: f.CategoryID.Bytes, AfterTime: f.AfterTime, AfterID: f.AfterID,
					MinPriceMinor: f.MinPriceMinor, MaxPriceMinor: f.MaxPriceMinor, PageLimit: f.PageLimit,
				})
			default:
				return s.q.ListProducts(ctx, productdb.ListProductsParams{
					AfterTime: f.AfterTime, AfterID: f.AfterID,
					MinPriceMinor: f.MinPriceMinor, MaxPriceMinor: f.MaxPriceMinor, PageLimit: f.PageLimit,
				})
			}
		}, productCursor)
	if err != nil {
		return nil, err
	}
	resp := &productv1.ListProductsResponse{Products: make([]*productv1.Product, 0, len(rows)), NextPageToken: next}
	for _, p := range rows {
		resp.Products = append(resp.Products, productProto(p))
	}
	return resp, nil
}

// listFilters checks ListProducts' filters and returns them (an empty
// Query: no text search; no cursor or limit yet) with the canonical string
// a page token is bound to.
func listFilters(m *productv1.ListProductsRequest) (productdb.SearchProductsParams, string, error) {
	var f productdb.SearchProductsParams
	var filters strings.Builder
	if m.CategoryId != nil {
		id, err := input.UUID("category_id", m.GetCategoryId())
		if err != nil {
			return f, "", err
		}
		f.CategoryID = pgtype.UUID{Bytes: id, Valid: true}
		fmt.Fprintf(&filters, "category=%s;", id)
	}
	if m.Query != nil {
		q := strings.TrimSpace(m.GetQuery())
		if q == "" {
			return f, "", shoperr.Invalid("query", "must not be empty when set")
		}
		if err := checkText("query", q, maxQuery); err != nil {
			return f, "", err
		}
		f.Query = q
		fmt.Fprintf(&filters, "query=%q;", q)
	}
	if m.MinPriceMinor != nil {
		if m.GetMinPriceMinor() < 0 || m.GetMinPriceMinor() > money.MaxPriceMinor {
			return f, "", shoperr.Invalid("min_price_minor", "must be between 0 and %d", money.MaxPriceMinor)
		}
		f.MinPriceMinor = pgtype.Int8{Int64: m.GetMinPriceMinor(), Valid: true}
		fmt.Fprintf(&filters, "min=%d;", m.GetMinPriceMinor())
	}
	if m.MaxPriceMinor != nil {
		if m.GetMaxPriceMinor() < 0 || m.GetMaxPriceMinor() > money.MaxPriceMinor {
			return f, "", shoperr.Invalid("max_price_minor", "must be between 0 and %d", money.MaxPriceMinor)
		}
		if m.MinPriceMinor != nil && m.GetMaxPriceMinor() < m.GetMinPriceMinor() {
			return f, "", shoperr.Invalid("max_price_minor", "must not be below min_price_minor")
		}
		f.MaxPriceMinor = pgtype.Int8{Int64: m.GetMaxPriceMinor(), Valid: true}
		fmt.Fprintf(&filters, "max=%d;", m.GetMaxPriceMinor())
	}
	return f, filters.String(), nil
}

// productUpdate is an UpdateProduct being built: the statement's
// parameters and, when the product moves, its new category, locked in the
// transaction.
type productUpdate struct {
	params   productdb.UpdateProductParams
	currency money.Currency
	move     bool
	category uuid.UUID
}

// productFields are the mutable fields of a Product, each checked and
// applied to the update in this order.
var productFields = []field[*productv1.Product, *productUpdate]{
	{path: "sku", name: "product.sku",
		populated: func(in *productv1.Product) bool { return in.GetSku() != "" },
		set: func(name string, in *productv1.Product, u *productUpdate) error {
			u.params.Sku = pgtype.Text{String: in.GetSku(), Valid: true}
			return checkSKU(name, in.GetSku())
		}},
	{path: "name", name: "product.name",
		populated: func(in *productv1.Product) bool { return in.GetName() != "" },
		set: func(name string, in *productv1.Product, u *productUpdate) error {
			u.params.Name = pgtype.Text{String: in.GetName(), Valid: true}
			return checkName(name, in.GetName(), maxProductName)
		}},
	{path: "description", name: "product.description",
		populated: func(in *productv1.Product) bool { return in.GetDescription() != "" },
		set: func(name string, in *productv1.Product, u *productUpdate) error {
			u.params.Description = pgtype.Text{String: in.GetDescription(), Valid: true}
			return checkText(name, in.GetDescription(), maxProductDescription)
		}},
	{path: "category_id", name: "product.category_id",
		populated: func(in *productv1.Product) bool { return in.GetCategoryId() != "" },
		set: func(name string, in *productv1.Product, u *productUpdate) (err error) {
			u.move = true
			u.category, err = input.UUID(name, in.GetCategoryId())
			return err
		}},
	{path: "price", name: "product.price",
		populated: func(in *productv1.Product) bool { return in.GetPrice() != nil },
		set: func(name string, in *productv1.Product, u *productUpdate) error {
			price, err := u.currency.CheckPrice(name, in.GetPrice())
			u.params.PriceMinor = pgtype.Int8{Int64: price, Valid: true}
			u.params.CurrencyCode = pgtype.Text{String: string(u.currency), Valid: true}
			return err
		}},
}

var productOutputOnly = []string{"id", "category_name", "version", "create_time", "update_time"}

// UpdateProduct changes the fields in update_mask, bumps the version and
// publishes ProductChanged. Moving a product locks its new category FOR
// SHARE. A deleted product stays deleted: the update finds no row.
func (s *ProductServer) UpdateProduct(ctx context.Context, req *connect.Request[productv1.UpdateProductRequest]) (*connect.Response[productv1.UpdateProductResponse], error) {
	in := req.Msg.GetProduct()
	if in == nil {
		return nil, shoperr.Invalid("product", "is required")
	}
	id, err := input.UUID("product.id", in.GetId())
	if err != nil {
		return nil, err
	}
	// Check every changed field before touching the database.
	u := productUpdate{params: productdb.UpdateProductParams{ID: id, UpdateTime: s.timestamp()}, currency: s.currency}
	if err := applyUpdate(req.Msg.GetUpdateMask(), productFields, productOutputOnly, in, &u); err != nil {
		return nil, err
	}
	if v := req.Msg.ExpectedVersion; v != nil {
		u.params.ExpectedVersion = pgtype.Int8{Int64: *v, Valid: true}
	}
	var p productdb.Product
	resp, err := writeOnce(ctx, s.Store, productv1connect.ProductServiceUpdateProductProcedure, req.Msg.RequestId, req.Msg, then(func(tx pgx.Tx, q *productdb.Queries) error {
		if u.move {
			cat, err := shareLockCategory(ctx, q, "product.category_id", u.category)
			if err != nil {
				return err
			}
			u.params.CategoryID = pgtype.UUID{Bytes: cat.ID, Valid: true}
			u.params.CategoryName = pgtype.Text{String: cat.Name, Valid: true}
		}
		var err error
		p, err = q.UpdateProduct(ctx, u.params)
		switch {
		case pgdb.IsUniqueViolation(err, skuIndex):
			return skuTaken(u.params.Sku.String)
		case errors.Is(err, pgx.ErrNoRows):
			cur, err := q.GetProduct(ctx, id)
			return updateMissed("product", id, req.Msg.ExpectedVersion, cur.Version, err)
		case err != nil:
			return err
		}
		return s.events.ProductsChanged(ctx, tx, []productdb.Product{p})
	}, func() *productv1.UpdateProductResponse {
		return &productv1.UpdateProductResponse{Product: productProto(p)}
	}))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// DeleteProduct deletes a product for good (a hard delete: the row is
// removed, so no update can bring it back) and publishes ProductDeleted
// with the bumped version as the receivers' tombstone.
func (s *ProductServer) DeleteProduct(ctx context.Context, req *connect.Request[productv1.DeleteProductRequest]) (*connect.Response[productv1.DeleteProductResponse], error) {
	id, err := input.UUID("id", req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	resp, err := writeOnce(ctx, s.Store, productv1connect.ProductServiceDeleteProductProcedure, req.Msg.RequestId, req.Msg, then(func(tx pgx.Tx, q *productdb.Queries) error {
		version, err := q.DeleteProduct(ctx, id)
		if err != nil {
			return notFound(err, "product", id)
		}
		return s.events.ProductDeleted(ctx, tx, id, version)
	}, func() *productv1.DeleteProductResponse { return &productv1.DeleteProductResponse{} }))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}
