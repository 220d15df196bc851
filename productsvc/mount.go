// Package productsvc is the catalog service: categories and products with
// public reads and admin writes, on its own database.
package productsvc

import (
	"net/http"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/deadletter"
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

	eventsv1connect.DeadLetterServiceListDeadLettersProcedure:   auth.Admin,
	eventsv1connect.DeadLetterServiceReplayDeadLettersProcedure: auth.Admin,
	eventsv1connect.DeadLetterServicePurgeDeadLettersProcedure:  auth.Admin,
}

// Mount registers CategoryService, ProductService and the outbox's
// DeadLetterService on srv, behind token verification with Rules, with the
// handler options opts. With telemetry among opts (see boot.Env), the
// trace of each write is stored with the events it causes.
func Mount(srv *server.Server, opts []connect.HandlerOption, verifier *auth.Verifier, store *Store) {
	guard := func(path string, h http.Handler) {
		srv.Handle(path, auth.Middleware(verifier, Rules, h))
	}
	guard(productv1connect.NewCategoryServiceHandler(&CategoryServer{store}, opts...))
	guard(productv1connect.NewProductServiceHandler(&ProductServer{store}, opts...))
	guard(eventsv1connect.NewDeadLetterServiceHandler(deadletter.NewServer(deadLetterScope, deadLetters{store}), opts...))
	srv.RegisterServiceNames(productv1connect.CategoryServiceName, productv1connect.ProductServiceName,
		eventsv1connect.DeadLetterServiceName)
}
