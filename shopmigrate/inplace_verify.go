package shopmigrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// What an in-place run checks before it commits: each table's rows and
// original columns, the backfills and the foreign keys.

// sums returns each legacy table's count and checksum over its original
// columns (those the migration does not add).
func (ip *inplace) sums(ctx context.Context) (map[string][2]string, error) {
	out := map[string][2]string{}
	for _, t := range legacyTables {
		rows, err := ip.tx.Query(ctx, `SELECT column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`, t)
		if err != nil {
			return nil, err
		}
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		var keep []string
		for _, c := range cols {
			if !isAdded(t, c) {
				keep = append(keep, ident(c))
			}
		}
		if len(keep) == 0 {
			return nil, fmt.Errorf("table %s not found: is this the legacy database?", t)
		}
		n, sum, err := checksum(ctx, ip.tx, "SELECT "+strings.Join(keep, ", ")+" FROM "+ident(t))
		if err != nil {
			return nil, fmt.Errorf("checksum %s: %w", t, err)
		}
		out[t] = [2]string{fmt.Sprint(n), sum}
	}
	return out, nil
}

func isAdded(table, column string) bool {
	for _, c := range addedColumns {
		if c.table == table && c.column == column {
			return true
		}
	}
	return false
}

// verify checks, inside the transaction, that every table kept its rows
// and original columns, that the backfills match their sources, and (up)
// that no cross-service foreign key is left.
func (ip *inplace) verify(ctx context.Context, before map[string][2]string) error {
	after, err := ip.sums(ctx)
	if err != nil {
		return err
	}
	ip.rep.Verified = true
	for _, t := range legacyTables {
		tr := TableReport{Table: t, Database: "legacy", LegacyChecksum: before[t][1], TargetChecksum: after[t][1]}
		fmt.Sscan(before[t][0], &tr.LegacyRows)
		fmt.Sscan(after[t][0], &tr.TargetRows)
		tr.Match = before[t] == after[t]
		ip.rep.Verified = ip.rep.Verified && tr.Match
		ip.rep.Tables = append(ip.rep.Tables, tr)
	}
	if ip.cfg.Down {
		return nil
	}
	for _, col := range addedColumns {
		var n int64
		if err := ip.tx.QueryRow(ctx, col.differ).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			ip.rep.Verified = false
			ip.rep.Problems = append(ip.rep.Problems, Problem{Kind: "backfill-differs", Table: col.table, Blocking: true,
				Detail: fmt.Sprintf("%d rows of %s.%s differ from their source", n, col.table, col.column), Resolution: "rolled back"})
		}
	}
	for _, fk := range crossFKs {
		var n int
		if err := ip.tx.QueryRow(ctx, `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = $1::regclass AND confrelid = $2::regclass`,
			fk.table, fk.refTable).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			ip.rep.Verified = false
			ip.rep.Problems = append(ip.rep.Problems, Problem{Kind: "foreign-key-left", Table: fk.table, Blocking: true,
				Detail: fmt.Sprintf("a foreign key from %s to %s is still there", fk.table, fk.refTable), Resolution: "rolled back"})
		}
	}
	for _, o := range []struct{ kind, sql string }{
		{"carts of deleted users", `SELECT count(*) FROM carts c JOIN users u ON u.id = c.user_id WHERE u.deleted_at IS NOT NULL`},
		{"cart lines of deleted products", `SELECT count(*) FROM cart_items i JOIN products p ON p.id = i.product_id WHERE p.deleted_at IS NOT NULL`},
		{"wishlist items of deleted products", `SELECT count(*) FROM wishlist_items i JOIN products p ON p.id = i.product_id WHERE p.deleted_at IS NOT NULL`},
	} {
		var n int64
		if err := ip.tx.QueryRow(ctx, o.sql).Scan(&n); err != nil {
			return err
		}
		ip.rep.Orphans = append(ip.rep.Orphans, Orphan{Kind: o.kind, Count: n, Carried: "kept in place, with their snapshot columns filled from the deleted row"})
	}
	return nil
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }
