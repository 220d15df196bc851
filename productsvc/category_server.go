package productsvc

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/input"
	"github.com/decoupledshop/shop/internal/pagetoken"
	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// CategoryServer implements shop.product.v1.CategoryService.
type CategoryServer struct {
	*Store
}

var _ productv1connect.CategoryServiceHandler = (*CategoryServer)(nil)

const categoryNameIndex = "categories_name_key"

func checkCategoryFields(name, description string) error {
	if err := checkName("name", name, maxCategoryName); err != nil {
		return err
	}
	return checkText("description", description, maxCategoryDescription)
}

// CreateCategory creates a category with a unique name.
func (s *CategoryServer) CreateCategory(ctx context.Context, req *connect.Request[productv1.CreateCategoryRequest]) (*connect.Response[productv1.CreateCategoryResponse], error) {
	m := req.Msg
	if err := checkCategoryFields(m.GetName(), m.GetDescription()); err != nil {
		return nil, err
	}
	var c productdb.Category
	resp, err := writeOnce(ctx, s.Store, productv1connect.CategoryServiceCreateCategoryProcedure, req.Msg.RequestId, req.Msg, then(func(tx pgx.Tx, q *productdb.Queries) error {
		var err error
		c, err = q.CreateCategory(ctx, productdb.CreateCategoryParams{
			ID: s.newID(), Name: m.GetName(), Description: m.GetDescription(), CreateTime: s.timestamp(),
		})
		if pgdb.IsUniqueViolation(err, categoryNameIndex) {
			return shoperr.AlreadyExists("a category named %q already exists", m.GetName())
		}
		if err != nil {
			return err
		}
		return s.events.CategoryChanged(ctx, tx, c)
	}, func() *productv1.CreateCategoryResponse {
		return &productv1.CreateCategoryResponse{Category: categoryProto(c)}
	}))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// GetCategory returns one category.
func (s *CategoryServer) GetCategory(ctx context.Context, req *connect.Request[productv1.GetCategoryRequest]) (*connect.Response[productv1.GetCategoryResponse], error) {
	id, err := input.UUID("id", req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	c, err := s.q.GetCategory(ctx, id)
	if err != nil {
		return nil, notFound(err, "category", id)
	}
	return connect.NewResponse(&productv1.GetCategoryResponse{Category: categoryProto(c)}), nil
}

// ListCategories pages through categories in (create_time desc, id) order.
func (s *CategoryServer) ListCategories(ctx context.Context, req *connect.Request[productv1.ListCategoriesRequest]) (*connect.Response[productv1.ListCategoriesResponse], error) {
	rows, next, err := pagetoken.List(req.Msg.GetPageSize(), req.Msg.GetPageToken(), "categories",
		func(after pagetoken.Cursor, limit int32) ([]productdb.Category, error) {
			afterID, err := after.KeyUUID()
			if err != nil {
				return nil, err
			}
			return s.q.ListCategories(ctx, productdb.ListCategoriesParams{AfterTime: after.CreateTime, AfterID: afterID, PageLimit: limit})
		}, categoryCursor)
	if err != nil {
		return nil, err
	}
	resp := &productv1.ListCategoriesResponse{NextPageToken: next}
	for _, c := range rows {
		resp.Categories = append(resp.Categories, categoryProto(c))
	}
	return connect.NewResponse(resp), nil
}

// categoryFields are the mutable fields of a Category, each checked and
// applied to the update in this order.
var categoryFields = []field[*productv1.Category, *productdb.UpdateCategoryParams]{
	{path: "name", name: "category.name",
		populated: func(in *productv1.Category) bool { return in.GetName() != "" },
		set: func(name string, in *productv1.Category, p *productdb.UpdateCategoryParams) error {
			p.Name = pgtype.Text{String: in.GetName(), Valid: true}
			return checkName(name, in.GetName(), maxCategoryName)
		}},
	{path: "description", name: "category.description",
		populated: func(in *productv1.Category) bool { return in.GetDescription() != "" },
		set: func(name string, in *productv1.Category, p *productdb.UpdateCategoryParams) error {
			p.Description = pgtype.Text{String: in.GetDescription(), Valid: true}
			return checkText(name, in.GetDescription(), maxCategoryDescription)
		}},
}

var categoryOutputOnly = []string{"id", "version", "create_time", "update_time"}

// UpdateCategory changes a category's name or description. A rename rewrites
// category_name on all its products and bumps their versions, publishing one
// ProductChanged each, in the same transaction.
func (s *CategoryServer) UpdateCategory(ctx context.Context, req *connect.Request[productv1.UpdateCategoryRequest]) (*connect.Response[productv1.UpdateCategoryResponse], error) {
	in := req.Msg.GetCategory()
	if in == nil {
		return nil, shoperr.Invalid("category", "is required")
	}
	id, err := input.UUID("category.id", in.GetId())
	if err != nil {
		return nil, err
	}
	p := productdb.UpdateCategoryParams{ID: id, UpdateTime: s.timestamp()}
	if err := applyUpdate(req.Msg.GetUpdateMask(), categoryFields, categoryOutputOnly, in, &p); err != nil {
		return nil, err
	}
	if v := req.Msg.ExpectedVersion; v != nil {
		p.ExpectedVersion = pgtype.Int8{Int64: *v, Valid: true}
	}
	var c productdb.Category
	resp, err := writeOnce(ctx, s.Store, productv1connect.CategoryServiceUpdateCategoryProcedure, req.Msg.RequestId, req.Msg, then(func(tx pgx.Tx, q *productdb.Queries) error {
		row, err := q.UpdateCategory(ctx, p)
		switch {
		case pgdb.IsUniqueViolation(err, categoryNameIndex):
			return shoperr.AlreadyExists("a category named %q already exists", p.Name.String)
		case errors.Is(err, pgx.ErrNoRows):
			cur, err := q.GetCategory(ctx, id)
			return updateMissed("category", id, req.Msg.ExpectedVersion, cur.Version, err)
		case err != nil:
			return err
		}
		c = productdb.Category{
			ID: row.ID, Name: row.Name, Description: row.Description,
			Version: row.Version, CreateTime: row.CreateTime, UpdateTime: row.UpdateTime,
		}
		if err := s.events.CategoryChanged(ctx, tx, c); err != nil {
			return err
		}
		if c.Name == row.OldName {
			return nil
		}
		products, err := q.RenameCategoryInProducts(ctx, productdb.RenameCategoryInProductsParams{
			CategoryID: id, CategoryName: c.Name, UpdateTime: c.UpdateTime,
		})
		if err != nil {
			return err
		}
		return s.events.ProductsChanged(ctx, tx, products)
	}, func() *productv1.UpdateCategoryResponse {
		return &productv1.UpdateCategoryResponse{Category: categoryProto(c)}
	}))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// DeleteCategory deletes a category that no product references. The
// category row is locked FOR UPDATE first, so a concurrent CreateProduct
// (which holds FOR SHARE on it) either commits before the check sees its
// product, or waits and then finds the category gone.
func (s *CategoryServer) DeleteCategory(ctx context.Context, req *connect.Request[productv1.DeleteCategoryRequest]) (*connect.Response[productv1.DeleteCategoryResponse], error) {
	id, err := input.UUID("id", req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	resp, err := writeOnce(ctx, s.Store, productv1connect.CategoryServiceDeleteCategoryProcedure, req.Msg.RequestId, req.Msg, then(func(_ pgx.Tx, q *productdb.Queries) error {
		if _, err := q.LockCategory(ctx, id); err != nil {
			return notFound(err, "category", id)
		}
		used, err := q.CategoryHasProducts(ctx, id)
		if err != nil {
			return err
		}
		if used {
			return shoperr.FailedPrecondition("category %s still has products; move or delete them first", id)
		}
		_, err = q.DeleteCategory(ctx, id)
		return err
	}, func() *productv1.DeleteCategoryResponse { return &productv1.DeleteCategoryResponse{} }))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}
