package shopmigrate

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	legacydb "github.com/decoupledshop/shop/gen/sqlc/legacy"
)

// idNamespace is the UUIDv5 namespace of legacy ids: the UUID of legacy
// row <table>:<id> is uuid.NewSHA1(idNamespace, "<table>:<id>").
var idNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/decoupledshop/shop/shopmigrate/legacy-ids"))

// LegacyUUID is the UUID legacy row id of table (categories or products)
// becomes: UUIDv5 of "<table>:<id>", the same in every run.
func LegacyUUID(table string, id int64) uuid.UUID {
	return uuid.NewSHA1(idNamespace, []byte(table+":"+strconv.FormatInt(id, 10)))
}

// legacyID is a row for shopmigrate.legacy_ids.
type legacyID struct {
	table string
	id    int64
	uuid  uuid.UUID
}

// batch is what one read of the legacy database gives one step.
type batch struct {
	last    int64       // keyset position after the batch
	keys    int         // keyset positions (rows, or parents) read
	read    int64       // legacy rows read
	rows    [][]any     // target rows, in the step's columns
	ids     []legacyID  // legacy ids of those rows
	parents []string    // children steps: the carts (wishlists) covered, by subject
	deleted []uuid.UUID // products: deleted in the legacy database
	promos  []promoKey  // promo codes: legacy ids and codes
	// products: versions of live products by id, and their snapshot
	names  map[uuid.UUID]string
	prices map[uuid.UUID]int64
}

// promoKey is a legacy promo code's id and the code it became.
type promoKey struct {
	id   int64
	code string
}

// add counts a keyset position (id) of the batch, holding rows legacy rows.
func (b *batch) add(id int64, rows int) {
	b.last, b.keys, b.read = id, b.keys+1, b.read+int64(rows)
}

// step copies one target table.
type step struct {
	table   string
	db      string // "product" or "cart"
	columns []string
	// count counts the legacy rows a pass reads (since: nil in the first
	// pass), for the progress bar.
	count func(ctx context.Context, q *legacydb.Queries, since *time.Time) (int64, error)
	// read reads the batch after keyset position after: up to limit rows
	// (or parents), changed at or after since (nil: all).
	read func(ctx context.Context, m *splitter, after int64, since *time.Time, limit int32) (*batch, error)
	// parentBatch divides the batch size for steps reading by parent.
	parentBatch int
	// ownStage: upsert creates and fills table stage itself.
	ownStage bool
	// upsert moves the catch-up batch in table stage into the table and
	// returns the rows it changed.
	upsert func(ctx context.Context, m *splitter, tx pgx.Tx, b *batch) (int64, error)
}

var (
	categoryColumns = []string{"id", "name", "description", "version", "create_time", "update_time"}
	productColumns  = []string{"id", "sku", "name", "description", "category_id", "category_name", "price_minor",
		"currency_code", "version", "create_time", "update_time"}
	versionColumns  = []string{"product_id", "version", "deleted", "update_time"}
	promoColumns    = []string{"code", "percent_off", "amount_off_minor", "currency_code", "max_redemptions", "start_time", "end_time", "active", "create_time"}
	ownerColumns    = []string{"user_id", "create_time", "update_time"}
	cartItemColumns = []string{"user_id", "product_id", "quantity", "name", "unit_price_minor", "added_unit_price_minor",
		"currency_code", "product_version", "available", "add_time", "update_time"}
	wishItemColumns = []string{"user_id", "product_id", "name", "price_minor", "currency_code", "product_version", "available", "add_time"}
	holdColumns     = []string{"user_id", "code", "apply_time"}
)

// steps are the tables in the order a pass copies them: productsvc's
// first (the cart's catch-up reads their versions), and in each database
// parents before children.
func steps() []*step {
	return []*step{
		categoryStep(), productStep(), // productsvc
		versionStep(), promoStep(), // cartsvc: what lines refer to
		cartStep(), cartItemStep(), wishlistStep(), wishItemStep(), holdStep(),
	}
}

// upsertSQL returns an upsert running sql (an INSERT from stage) and
// counting the rows it wrote.
func upsertSQL(sql string) func(context.Context, *splitter, pgx.Tx, *batch) (int64, error) {
	return func(ctx context.Context, m *splitter, tx pgx.Tx, b *batch) (int64, error) {
		tag, err := tx.Exec(ctx, sql)
		return tag.RowsAffected(), err
	}
}
