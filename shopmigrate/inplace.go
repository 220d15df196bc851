package shopmigrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// InplaceConfig configures an in-place migration of the legacy database.
type InplaceConfig struct {
	LegacyURL string
	// DryRun runs the whole migration and its verification, then rolls
	// back: the report shows exactly what a real run would do.
	DryRun bool
	// Down undoes a committed in-place migration: it restores the foreign
	// keys it dropped (as recorded) and drops the columns it added.
	Down bool
	// LockTimeout bounds the wait for each table lock (0: 5 s), so a busy
	// database fails the run instead of queueing every query behind it.
	LockTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	// failAfterStep, when positive, fails the run after that many steps
	// (tests).
	failAfterStep int
}

// crossFK is a foreign key that crosses what are now service boundaries.
type crossFK struct{ table, refTable string }

// crossFKs are the legacy foreign keys from cart data to users and products
// and from products to categories (which productsvc keeps without one).
// cart_promo_codes' keys stay: carts and promo codes are both cartsvc's.
var crossFKs = []crossFK{
	{"products", "categories"}, {"carts", "users"}, {"wishlists", "users"},
	{"cart_items", "products"}, {"wishlist_items", "products"},
}

// addedColumn is a denormalized column the migration adds and backfills.
type addedColumn struct {
	table, column, typ string
	// backfill sets the column where it differs from its source.
	backfill string
	// differ counts rows whose column differs from its source.
	differ string
}

var addedColumns = []addedColumn{
	{"products", "category_name", "text",
		`UPDATE products p SET category_name = c.name FROM categories c WHERE c.id = p.category_id AND p.category_name IS DISTINCT FROM c.name`,
		`SELECT count(*) FROM products p LEFT JOIN categories c ON c.id = p.category_id WHERE p.category_name IS DISTINCT FROM c.name`},
	{"cart_items", "product_name", "text",
		`UPDATE cart_items i SET product_name = p.name FROM products p WHERE p.id = i.product_id AND i.product_name IS DISTINCT FROM p.name`,
		`SELECT count(*) FROM cart_items i LEFT JOIN products p ON p.id = i.product_id WHERE i.product_name IS DISTINCT FROM p.name`},
	{"cart_items", "product_price", "numeric(12,2)",
		`UPDATE cart_items i SET product_price = p.price FROM products p WHERE p.id = i.product_id AND i.product_price IS DISTINCT FROM p.price`,
		`SELECT count(*) FROM cart_items i LEFT JOIN products p ON p.id = i.product_id WHERE i.product_price IS DISTINCT FROM p.price`},
	{"wishlist_items", "product_name", "text",
		`UPDATE wishlist_items i SET product_name = p.name FROM products p WHERE p.id = i.product_id AND i.product_name IS DISTINCT FROM p.name`,
		`SELECT count(*) FROM wishlist_items i LEFT JOIN products p ON p.id = i.product_id WHERE i.product_name IS DISTINCT FROM p.name`},
	{"wishlist_items", "product_price", "numeric(12,2)",
		`UPDATE wishlist_items i SET product_price = p.price FROM products p WHERE p.id = i.product_id AND i.product_price IS DISTINCT FROM p.price`,
		`SELECT count(*) FROM wishlist_items i LEFT JOIN products p ON p.id = i.product_id WHERE i.product_price IS DISTINCT FROM p.price`},
}

// legacyTables are the tables an in-place run verifies unchanged.
var legacyTables = []string{"users", "categories", "products", "carts", "cart_items", "wishlists", "wishlist_items", "promo_codes", "cart_promo_codes"}

// inplaceDDL records, in the legacy database, the foreign keys an in-place
// run dropped, so that --down can restore them exactly.
const inplaceDDL = `
CREATE SCHEMA IF NOT EXISTS shopmigrate;
CREATE TABLE IF NOT EXISTS shopmigrate.dropped_foreign_keys (
    tbl        text        NOT NULL,
    name       text        NOT NULL,
    definition text        NOT NULL,
    drop_time  timestamptz NOT NULL,
    PRIMARY KEY (tbl, name)
);`

// Inplace migrates the legacy database in place, in ONE transaction: it
// drops the cross-service foreign keys, adds and backfills the
// denormalized columns, and verifies before committing that every table
// still has the same rows and original columns (count and checksum), that
// no backfilled value differs from its source, and that no cross-service
// key is left. Anything failing rolls the whole transaction back. A second
// run finds nothing to do and says so. With Down, it undoes a committed
// run the same way.
func Inplace(ctx context.Context, cfg InplaceConfig) (*Report, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = 5 * time.Second
	}
	rep := &Report{Mode: "inplace", DryRun: cfg.DryRun, Started: cfg.Now()}
	defer func() {
		rep.Finished = cfg.Now()
		rep.Seconds = rep.Finished.Sub(rep.Started).Seconds()
	}()
	conn, err := pgx.Connect(ctx, cfg.LegacyURL)
	if err != nil {
		rep.Outcome = "Failed: legacy database: " + err.Error()
		return rep, fmt.Errorf("legacy database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return rep, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", cfg.LockTimeout.Milliseconds())); err != nil {
		return rep, err
	}
	ip := &inplace{cfg: cfg, tx: tx, rep: rep}
	before, err := ip.sums(ctx)
	if err != nil {
		return rep, ip.fail(err)
	}
	if cfg.Down {
		err = ip.down(ctx)
	} else {
		err = ip.up(ctx)
	}
	if err != nil {
		return rep, ip.fail(err)
	}
	if err := ip.verify(ctx, before); err != nil {
		return rep, ip.fail(err)
	}
	if !rep.Verified {
		err := errors.New("verification failed; rolled back, nothing changed")
		return rep, ip.fail(err)
	}
	if cfg.DryRun {
		rep.Outcome = fmt.Sprintf("Dry run: the migration ran and verified (%d changes), then rolled back; nothing changed.", rep.Changed)
		return rep, nil
	}
	rep.Outcome = inplaceOutcome(rep.Changed, cfg.Down)
	if err := tx.Commit(ctx); err != nil {
		return rep, ip.fail(fmt.Errorf("commit: %w", err))
	}
	return rep, nil
}

// inplaceOutcome is the outcome of a committed run with changes changes.
func inplaceOutcome(changes int64, down bool) string {
	switch {
	case changes == 0 && down:
		return "Nothing changed: there was no in-place migration to undo. Verified."
	case changes == 0:
		return "Nothing changed: the legacy database was already migrated in place. Verified."
	case down:
		return fmt.Sprintf("Undone: foreign keys restored and added columns dropped (%d changes), in one transaction. Verified.", changes)
	default:
		return fmt.Sprintf("Migrated in place in one transaction (%d changes). Verified: every table has the same rows, backfills match their sources, no cross-service foreign key is left.", changes)
	}
}

// inplace is one in-place run, inside its transaction.
type inplace struct {
	cfg   InplaceConfig
	tx    pgx.Tx
	rep   *Report
	steps int
}

func (ip *inplace) fail(err error) error {
	ip.rep.Verified = false
	ip.rep.Outcome = "Failed, rolled back: the legacy database is as it was. " + err.Error()
	return err
}

// step records a step and its changes, and fails when a test asked.
func (ip *inplace) step(changes int64, format string, args ...any) error {
	ip.rep.Steps = append(ip.rep.Steps, fmt.Sprintf(format, args...))
	ip.rep.Changed += changes
	ip.steps++
	if ip.cfg.failAfterStep > 0 && ip.steps >= ip.cfg.failAfterStep {
		return errInjected
	}
	return nil
}

// up drops the cross-service foreign keys and adds and backfills the
// denormalized columns.
func (ip *inplace) up(ctx context.Context) error {
	if _, err := ip.tx.Exec(ctx, inplaceDDL); err != nil {
		return err
	}
	for _, fk := range crossFKs {
		if err := ip.dropFK(ctx, fk); err != nil {
			return err
		}
	}
	for _, col := range addedColumns {
		if err := ip.addColumn(ctx, col); err != nil {
			return err
		}
	}
	return nil
}

// dropFK drops the foreign keys from fk.table to fk.refTable, recording
// each in shopmigrate.dropped_foreign_keys.
func (ip *inplace) dropFK(ctx context.Context, fk crossFK) error {
	rows, err := ip.tx.Query(ctx, `SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
		WHERE contype = 'f' AND conrelid = $1::regclass AND confrelid = $2::regclass ORDER BY conname`, fk.table, fk.refTable)
	if err != nil {
		return err
	}
	type con struct{ name, def string }
	cons, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (con, error) {
		var c con
		return c, r.Scan(&c.name, &c.def)
	})
	if err != nil {
		return err
	}
	if len(cons) == 0 {
		return ip.step(0, "%s → %s: no foreign key (already dropped)", fk.table, fk.refTable)
	}
	for _, c := range cons {
		if _, err := ip.tx.Exec(ctx, `INSERT INTO shopmigrate.dropped_foreign_keys (tbl, name, definition, drop_time)
			VALUES ($1, $2, $3, $4) ON CONFLICT (tbl, name) DO UPDATE SET definition = $3, drop_time = $4`,
			fk.table, c.name, c.def, ip.cfg.Now()); err != nil {
			return err
		}
		if _, err := ip.tx.Exec(ctx, "ALTER TABLE "+ident(fk.table)+" DROP CONSTRAINT "+ident(c.name)); err != nil {
			return err
		}
		if err := ip.step(1, "%s: dropped foreign key %s (%s), recorded in shopmigrate.dropped_foreign_keys", fk.table, c.name, c.def); err != nil {
			return err
		}
	}
	return nil
}

// addColumn adds col unless it is there, backfills it and makes it NOT
// NULL.
func (ip *inplace) addColumn(ctx context.Context, col addedColumn) error {
	var exists bool
	if err := ip.tx.QueryRow(ctx, `SELECT count(*) > 0 FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2`, col.table, col.column).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := ip.tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", ident(col.table), ident(col.column), col.typ)); err != nil {
			return err
		}
		if err := ip.step(1, "%s.%s %s: added", col.table, col.column, col.typ); err != nil {
			return err
		}
	}
	filled, err := ip.backfill(ctx, col)
	if err != nil {
		return err
	}
	if _, err := ip.tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", ident(col.table), ident(col.column))); err != nil {
		return fmt.Errorf("%s.%s: rows left without a source: %w", col.table, col.column, err)
	}
	return ip.step(filled.RowsAffected(), "%s.%s: %d rows backfilled (user triggers off, so updated_at stays), NOT NULL", col.table, col.column, filled.RowsAffected())
}

// backfill fills an added column with its user triggers disabled: it is a
// change of shape, not a user's write, so updated_at (and whatever else
// the legacy triggers do) must not move.
func (ip *inplace) backfill(ctx context.Context, col addedColumn) (pgconn.CommandTag, error) {
	rows, err := ip.tx.Query(ctx, `SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal AND tgenabled = 'O'`, col.table)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	triggers, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	for _, tg := range triggers {
		if _, err := ip.tx.Exec(ctx, "ALTER TABLE "+ident(col.table)+" DISABLE TRIGGER "+ident(tg)); err != nil {
			return pgconn.CommandTag{}, err
		}
	}
	tag, err := ip.tx.Exec(ctx, col.backfill)
	if err != nil {
		return tag, err
	}
	for _, tg := range triggers {
		if _, err := ip.tx.Exec(ctx, "ALTER TABLE "+ident(col.table)+" ENABLE TRIGGER "+ident(tg)); err != nil {
			return tag, err
		}
	}
	return tag, nil
}

func (ip *inplace) down(ctx context.Context) error {
	for _, col := range addedColumns {
		var n int
		if err := ip.tx.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2`, col.table, col.column).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			continue
		}
		if _, err := ip.tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", ident(col.table), ident(col.column))); err != nil {
			return err
		}
		if err := ip.step(1, "%s.%s: dropped", col.table, col.column); err != nil {
			return err
		}
	}
	var recorded bool
	if err := ip.tx.QueryRow(ctx, `SELECT to_regclass('shopmigrate.dropped_foreign_keys') IS NOT NULL`).Scan(&recorded); err != nil || !recorded {
		return err
	}
	rows, err := ip.tx.Query(ctx, `DELETE FROM shopmigrate.dropped_foreign_keys RETURNING tbl, name, definition`)
	if err != nil {
		return err
	}
	var fks [][3]string
	var f [3]string
	if _, err := pgx.ForEachRow(rows, []any{&f[0], &f[1], &f[2]}, func() error { fks = append(fks, f); return nil }); err != nil {
		return err
	}
	for _, f := range fks {
		if _, err := ip.tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", ident(f[0]), ident(f[1]), f[2])); err != nil {
			return fmt.Errorf("restore foreign key %s on %s: %w", f[1], f[0], err)
		}
		if err := ip.step(1, "%s: restored foreign key %s (%s), validated", f[0], f[1], f[2]); err != nil {
			return err
		}
	}
	return nil
}
