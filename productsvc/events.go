package productsvc

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
)

// Publisher records the events of a catalog change inside the transaction
// that makes the change, so a change and its events commit or roll back
// together. The catalog calls it after every write, in the same pgx.Tx.
type Publisher interface {
	// CategoryChanged records a category's new state (create or update).
	CategoryChanged(ctx context.Context, tx pgx.Tx, c productdb.Category) error
	// ProductsChanged records the full new state of each product (create,
	// update, or one per product of a renamed category).
	ProductsChanged(ctx context.Context, tx pgx.Tx, products []productdb.Product) error
	// ProductDeleted records a product's tombstone at version.
	ProductDeleted(ctx context.Context, tx pgx.Tx, id uuid.UUID, version int64) error
}

// noEvents publishes nothing. It stands in until the transactional outbox
// lands (the event-delivery issue), which replaces it in Run.
type noEvents struct{}

func (noEvents) CategoryChanged(context.Context, pgx.Tx, productdb.Category) error  { return nil }
func (noEvents) ProductsChanged(context.Context, pgx.Tx, []productdb.Product) error { return nil }
func (noEvents) ProductDeleted(context.Context, pgx.Tx, uuid.UUID, int64) error     { return nil }
