package shopmigrate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// blockingKinds are the problems that stop a split before it writes
// (precision too, without --round-fractions).
var blockingKinds = map[string]bool{"conflict-unresolved": true, "out-of-range": true, "invalid": true}

// refusedFix is the resolution of a blocking problem in the data.
const refusedFix = "refused: fix the row in the legacy database"

// problems runs the checks on the legacy database and, before a first
// pass, makes sure the targets hold no rows of their own.
func (m *splitter) problems(ctx context.Context, first bool) ([]Problem, error) {
	found, err := m.lq.ListProblems(ctx, m.cfg.RoundFractions)
	if err != nil {
		return nil, fmt.Errorf("check the legacy database: %w", err)
	}
	out := make([]Problem, 0, len(found))
	for _, f := range found {
		p := Problem{Kind: f.Kind, Table: f.Tbl, LegacyID: f.LegacyID, Detail: f.Detail, Resolution: f.Resolution,
			Blocking: blockingKinds[f.Kind] || (f.Kind == "precision" && !m.cfg.RoundFractions)}
		if p.Resolution == "" {
			p.Resolution = refusedFix
		}
		out = append(out, p)
	}
	if !first {
		return out, nil
	}
	for _, st := range steps() {
		var n int64
		if err := m.db(st.db).QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{st.table}.Sanitize()).Scan(&n); err != nil {
			return nil, fmt.Errorf("%s database: %w", st.db, err)
		}
		if n > 0 {
			out = append(out, Problem{Kind: "target-not-empty", Table: st.table, Blocking: true,
				Detail:     fmt.Sprintf("the %s database's %s holds %d rows before the first pass", st.db, st.table, n),
				Resolution: "refused: split into freshly migrated, empty service databases"})
		}
	}
	return out, nil
}
