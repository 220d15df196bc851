// Package productsvc is the catalog service: categories and products with
// public reads and admin writes, on its own database.
package productsvc

import (
	"net/http"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/server"
)

// Rules classifies every procedure productsvc serves; anything else is
// refused by the auth middleware.
var Rules = auth.Rules{
	productv1connect.CategoryServiceCreateCategoryProcedure: auth.Admin,
	productv1connect.CategoryServiceGetCategoryProcedure:    auth.Public,
	productv1connect.CategoryServiceListCategoriesProcedure: auth.Public,
	productv1connect.CategoryServiceUpdateCategoryProcedure: auth.Admin,
	productv1connect.CategoryServiceDeleteCategoryProcedure: auth.Admin,

	productv1connect.ProductServiceCreateProductProcedure:    auth.Admin,
	productv1connect.ProductServiceGetProductProcedure:       auth.Public,
	productv1connect.ProductServiceBatchGetProductsProcedure: auth.Public,
	productv1connect.ProductServiceListProductsProcedure:     auth.Public,
	productv1connect.ProductServiceUpdateProductProcedure:    auth.Admin,
	productv1connect.ProductServiceDeleteProductProcedure:    auth.Admin,
}

// Mount registers CategoryService and ProductService on srv, behind token
// verification with Rules, with the hardened handler options opts.
func Mount(srv *server.Server, opts []connect.HandlerOption, verifier *auth.Verifier, catalog *Catalog) {
	guard := func(path string, h http.Handler) {
		srv.Handle(path, auth.Middleware(verifier, Rules, h))
	}
	guard(productv1connect.NewCategoryServiceHandler(&CategoryServer{catalog}, opts...))
	guard(productv1connect.NewProductServiceHandler(&ProductServer{catalog}, opts...))
	srv.RegisterServiceNames(productv1connect.CategoryServiceName, productv1connect.ProductServiceName)
}
