package shopmigrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The split's own state lives in a schema "shopmigrate" in EACH target
// database, next to the rows it describes: a batch's rows, their legacy
// ids and the checkpoint saying the batch is done commit in ONE
// transaction, so a crash leaves either all of a batch or none of it, and
// a rerun starts after the last committed batch. The legacy database is
// only read (it may be a live primary, or a replica).
const stateDDL = `
CREATE SCHEMA IF NOT EXISTS shopmigrate;
-- One row per target table: the pass it is in, and how far that pass got.
CREATE TABLE IF NOT EXISTS shopmigrate.checkpoints (
    tbl         text        PRIMARY KEY,
    pass        integer     NOT NULL,
    -- The legacy id (of the table, or of the parent cart or wishlist) the
    -- last committed batch ended at.
    last_id     bigint      NOT NULL,
    done        boolean     NOT NULL,
    read_rows   bigint      NOT NULL,
    written     bigint      NOT NULL,
    batches     integer     NOT NULL,
    -- A catch-up pass copies rows with legacy updated_at >= since.
    since       timestamptz,
    -- The legacy clock when the pass began: the next pass's since, less
    -- the overlap.
    mark        timestamptz NOT NULL,
    update_time timestamptz NOT NULL
);
-- Legacy integer ids and the UUIDs they became (UUIDv5 of table and id).
CREATE TABLE IF NOT EXISTS shopmigrate.legacy_ids (
    tbl       text   NOT NULL,
    legacy_id bigint NOT NULL,
    id        uuid   NOT NULL,
    PRIMARY KEY (tbl, legacy_id)
);
-- Legacy promo codes and the codes they became (cart database only), so
-- a catch-up pass can remove those deleted from the legacy database.
CREATE TABLE IF NOT EXISTS shopmigrate.promo_codes (
    legacy_id bigint PRIMARY KEY,
    code      text   NOT NULL
);
-- Legacy rows a catch-up pass found deleted for good (not softly): the
-- cart database keeps their products' tombstones, which the verification
-- leaves out, as the legacy database no longer has them.
CREATE TABLE IF NOT EXISTS shopmigrate.hard_deletes (
    tbl         text        NOT NULL,
    legacy_id   bigint      NOT NULL,
    delete_time timestamptz NOT NULL,
    PRIMARY KEY (tbl, legacy_id)
);
-- Legacy users and the OIDC subjects their carts and wishlists went to
-- (cart database only).
CREATE TABLE IF NOT EXISTS shopmigrate.users (
    legacy_id bigint PRIMARY KEY,
    email     text   NOT NULL,
    subject   text   NOT NULL UNIQUE,
    mapped    boolean NOT NULL,
    reason    text   NOT NULL
);
`

// checkpoint is a table's row in shopmigrate.checkpoints.
type checkpoint struct {
	table   string
	pass    int
	lastID  int64
	done    bool
	read    int64
	written int64
	batches int
	since   *time.Time
	mark    time.Time
}

// hasState reports whether the database holds shopmigrate's state.
func hasState(ctx context.Context, db *pgxpool.Pool) (bool, error) {
	var ok bool
	err := db.QueryRow(ctx, `SELECT to_regclass('shopmigrate.checkpoints') IS NOT NULL`).Scan(&ok)
	return ok, err
}

// checkpoints reads the database's checkpoints (none without state).
func checkpoints(ctx context.Context, db *pgxpool.Pool) (map[string]*checkpoint, error) {
	out := map[string]*checkpoint{}
	if ok, err := hasState(ctx, db); err != nil || !ok {
		return out, err
	}
	rows, err := db.Query(ctx, `SELECT tbl, pass, last_id, done, read_rows, written, batches, since, mark FROM shopmigrate.checkpoints`)
	if err != nil {
		return nil, err
	}
	var c checkpoint
	_, err = pgx.ForEachRow(rows, []any{&c.table, &c.pass, &c.lastID, &c.done, &c.read, &c.written, &c.batches, &c.since, &c.mark}, func() error {
		cc := c
		out[c.table] = &cc
		return nil
	})
	return out, err
}

// queueCheckpoint queues the write of c to bk, sent in the transaction of
// the batch it records.
func queueCheckpoint(bk *pgx.Batch, c *checkpoint, now time.Time) {
	bk.Queue(`
INSERT INTO shopmigrate.checkpoints (tbl, pass, last_id, done, read_rows, written, batches, since, mark, update_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (tbl) DO UPDATE SET pass = $2, last_id = $3, done = $4, read_rows = $5, written = $6,
    batches = $7, since = $8, mark = $9, update_time = $10`,
		c.table, c.pass, c.lastID, c.done, c.read, c.written, c.batches, c.since, c.mark, now)
}

// storedSubjects returns the subjects an earlier run gave legacy users.
func storedSubjects(ctx context.Context, cart *pgxpool.Pool) (map[int64]string, error) {
	out := map[int64]string{}
	if ok, err := hasState(ctx, cart); err != nil || !ok {
		return out, err
	}
	rows, err := cart.Query(ctx, `SELECT legacy_id, subject FROM shopmigrate.users`)
	if err != nil {
		return nil, err
	}
	var id int64
	var sub string
	_, err = pgx.ForEachRow(rows, []any{&id, &sub}, func() error { out[id] = sub; return nil })
	return out, err
}

// storeUsers records new users' subjects (users already stored are kept).
func storeUsers(ctx context.Context, cart *pgxpool.Pool, users []userRow) (int64, error) {
	if len(users) == 0 {
		return 0, nil
	}
	var n int64
	err := pgx.BeginFunc(ctx, cart, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE stage_users (LIKE shopmigrate.users) ON COMMIT DROP`); err != nil {
			return err
		}
		src := pgx.CopyFromSlice(len(users), func(i int) ([]any, error) {
			u := users[i]
			return []any{u.id, u.email, u.subject, u.mapped, u.reason}, nil
		})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"stage_users"}, []string{"legacy_id", "email", "subject", "mapped", "reason"}, src); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO shopmigrate.users SELECT * FROM stage_users ON CONFLICT DO NOTHING`)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store user subjects: %w", err)
	}
	return n, nil
}

// ensureState creates shopmigrate's schema and tables if missing.
func ensureState(ctx context.Context, db *pgxpool.Pool, name string) error {
	if _, err := db.Exec(ctx, stateDDL); err != nil {
		return fmt.Errorf("%s database: create schema shopmigrate: %w", name, err)
	}
	return nil
}

// errInjected is the failure a test injects after a number of batches.
var errInjected = errors.New("injected failure")
