package shopmigrate

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// baseline completes a first pass's baseline for tr: the plain COPYs of
// its batches (timed by runStep), plus the first batch's legacy read,
// which no copy of the table can overlap with writing (see TableReport).
func (m *splitter) baseline(ctx context.Context, st *step, tr *TableReport) error {
	began := time.Now()
	if _, err := st.read(ctx, m, 0, nil, m.limit(st)); err != nil {
		return fmt.Errorf("plain COPY baseline: read the first batch: %w", err)
	}
	tr.BaselineFirstReadSeconds = time.Since(began).Seconds()
	if total := tr.baselineSeconds + tr.BaselineFirstReadSeconds; total > 0 {
		tr.PlainCopyRowsPerSecond = float64(tr.baselineRows) / total
	}
	return nil
}

// plainCopyBatch times a plain COPY of a first pass's batch (see
// plainCopy) and adds it to tr's baseline.
func plainCopyBatch(ctx context.Context, target *pgxpool.Pool, st *step, b *batch, tr *TableReport) (time.Duration, error) {
	d, err := plainCopy(ctx, target, st, b.rows)
	if err != nil {
		return 0, fmt.Errorf("plain COPY baseline: %w", err)
	}
	tr.baselineRows, tr.baselineSeconds = tr.baselineRows+int64(len(b.rows)), tr.baselineSeconds+d.Seconds()
	return d, nil
}

// plainCopy times a plain COPY of rows into the step's table, in a
// transaction of its own as a plain COPY would run: BEGIN, the COPY (its
// indexes, triggers and foreign keys included) and a ROLLBACK standing
// for the COMMIT (which costs more).
func plainCopy(ctx context.Context, db *pgxpool.Pool, st *step, rows [][]any) (time.Duration, error) {
	began := time.Now()
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{st.table}, st.columns, pgx.CopyFromRows(rows)); err != nil {
		return 0, err
	}
	if err := tx.Rollback(ctx); err != nil {
		return 0, err
	}
	return time.Since(began), nil
}
