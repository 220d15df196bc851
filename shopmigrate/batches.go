package shopmigrate

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// runStep runs (or resumes) a pass over one table, batch by batch; each
// batch commits with its checkpoint.
func (m *splitter) runStep(ctx context.Context, st *step, pass int, cp *checkpoint) (tr TableReport, err error) {
	tr = TableReport{Table: st.table, Database: st.db}
	if cp != nil && cp.pass == pass && cp.done {
		return tr, nil
	}
	if cp == nil || cp.pass < pass {
		cp = &checkpoint{table: st.table, pass: pass, since: m.since(pass, cp), mark: m.mark}
	}
	bar, err := m.bar(ctx, st, cp)
	if err != nil {
		return tr, err
	}
	defer bar.close()
	limit := m.limit(st)
	began := time.Now()
	var baseline time.Duration // the interleaved plain COPYs, not the copy's
	defer func() { tr.timed(time.Since(began) - baseline) }()
	target := m.db(st.db)
	// The next batch is read from the legacy database while this one is
	// written: reading and writing overlap.
	batches, stop := m.readAhead(ctx, st, cp.lastID, cp.since, limit)
	defer stop()
	for r := range batches {
		if r.err != nil {
			return tr, fmt.Errorf("read legacy: %w", r.err)
		}
		tr.ReadSeconds += r.seconds
		if m.cfg.CompareCopy && pass == 1 && len(r.b.rows) > 0 {
			d, err := plainCopyBatch(ctx, target, st, r.b, &tr)
			if err != nil {
				return tr, err
			}
			baseline += d
		}
		if err := m.commitBatch(ctx, target, st, r.b, cp, limit, &tr); err != nil {
			return tr, err
		}
		if r.b.keys > 0 {
			bar.add(r.b.read)
		}
		if m.cfg.failAfterBatches > 0 && m.batches >= m.cfg.failAfterBatches {
			return tr, errInjected
		}
		if cp.done {
			return tr, nil
		}
		if err := m.throttle(ctx); err != nil {
			return tr, err
		}
	}
	return tr, ctx.Err()
}

// timed records that the table's copy took d.
func (tr *TableReport) timed(d time.Duration) {
	tr.Seconds = d.Seconds()
	if tr.Seconds > 0 {
		tr.RowsPerSecond = float64(tr.Written) / tr.Seconds
	}
}

// bar returns the progress bar of a step's pass, at the rows cp read.
func (m *splitter) bar(ctx context.Context, st *step, cp *checkpoint) (bar, error) {
	var total int64
	if m.cfg.Progress != nil { // the count is for the bar only
		var err error
		if total, err = st.count(ctx, m.lq, cp.since); err != nil {
			return bar{}, fmt.Errorf("count: %w", err)
		}
	}
	b := newBar(m.cfg.Progress, total, st.table)
	b.add(cp.read)
	return b, nil
}

// commitBatch writes a batch and its checkpoint cp in one transaction of
// target, and counts it in tr (its written rows even when the commit
// fails, as the report always did).
func (m *splitter) commitBatch(ctx context.Context, target *pgxpool.Pool, st *step, b *batch, cp *checkpoint, limit int32, tr *TableReport) error {
	var n int64
	err := pgx.BeginFunc(ctx, target, func(tx pgx.Tx) error {
		// The batch's bookkeeping (legacy ids, promo code keys, the
		// checkpoint) goes in one round trip after its rows.
		bk := &pgx.Batch{}
		if b.keys > 0 {
			var err error
			if n, err = m.write(ctx, st, tx, b, cp.pass); err != nil {
				return err
			}
			queueKeys(bk, b, cp.pass)
			cp.lastID, cp.read, cp.written, cp.batches = b.last, cp.read+b.read, cp.written+n, cp.batches+1
		}
		// A short batch is the last: the table's pass ends with it,
		// in its transaction.
		cp.done = b.keys < int(limit)
		tr.Written += n
		queueCheckpoint(bk, cp, m.cfg.Now())
		return tx.SendBatch(ctx, bk).Close()
	})
	if err != nil {
		return fmt.Errorf("write batch after legacy id %d: %w", cp.lastID, err)
	}
	if b.keys > 0 {
		tr.Read += b.read
		tr.Batches++
		m.batches++
	}
	return nil
}

// throttle pauses between batches, as configured.
func (m *splitter) throttle(ctx context.Context) error {
	if m.cfg.Throttle <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(m.cfg.Throttle):
		return nil
	}
}

// readResult is a batch read ahead, or the error reading it.
type readResult struct {
	b       *batch
	seconds float64
	err     error
}

// readAhead reads the step's batches after keyset position after, one
// ahead of the writer: the channel ends after a short batch (the last), or
// an error. stop ends the reading and waits for it.
func (m *splitter) readAhead(ctx context.Context, st *step, after int64, since *time.Time, limit int32) (<-chan readResult, func()) {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan readResult, 1)
	go func() {
		defer close(out)
		for {
			began := time.Now()
			b, err := st.read(ctx, m, after, since, limit)
			select {
			case out <- readResult{b, time.Since(began).Seconds(), err}:
			case <-ctx.Done():
				return
			}
			if err != nil || b.keys < int(limit) {
				return
			}
			after = b.last
		}
	}()
	return out, func() {
		cancel()
		for range out {
		}
	}
}

// write writes a batch: the first pass COPYs it straight into the table
// (its keys are new: the checkpoint says no earlier batch reached them);
// a catch-up pass COPYs it into a staging table and upserts from there,
// changing only rows that differ.
func (m *splitter) write(ctx context.Context, st *step, tx pgx.Tx, b *batch, pass int) (int64, error) {
	if pass == 1 {
		n, err := tx.CopyFrom(ctx, pgx.Identifier{st.table}, st.columns, pgx.CopyFromRows(b.rows))
		if err == nil && copyIDs(b, pass) {
			_, err = tx.CopyFrom(ctx, pgx.Identifier{"shopmigrate", "legacy_ids"}, []string{"tbl", "legacy_id", "id"},
				pgx.CopyFromSlice(len(b.ids), func(i int) ([]any, error) {
					return []any{b.ids[i].table, b.ids[i].id, b.ids[i].uuid}, nil
				}))
		}
		return n, err
	}
	if !st.ownStage {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE stage (LIKE `+pgx.Identifier{st.table}.Sanitize()+` INCLUDING DEFAULTS) ON COMMIT DROP`); err != nil {
			return 0, err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"stage"}, st.columns, pgx.CopyFromRows(b.rows)); err != nil {
			return 0, err
		}
	}
	return st.upsert(ctx, m, tx, b)
}

// copyIDsMin is the fewest legacy ids a first pass's batch COPYs into
// shopmigrate.legacy_ids; fewer go with the batch's other bookkeeping in
// one round trip (a COPY costs two).
const copyIDsMin = 256

// copyIDs reports whether write COPYs the batch's legacy ids (new in a
// first pass) rather than queueKeys inserting them.
func copyIDs(b *batch, pass int) bool { return pass == 1 && len(b.ids) >= copyIDsMin }

// queueKeys queues to bk the records of the batch's legacy ids (the UUIDs
// they became; unless write COPYs them) and promo codes (the codes they
// became), new or updated.
func queueKeys(bk *pgx.Batch, b *batch, pass int) {
	if len(b.ids) > 0 && !copyIDs(b, pass) {
		tables, ids, uuids := make([]string, len(b.ids)), make([]int64, len(b.ids)), make([]uuid.UUID, len(b.ids))
		for i, id := range b.ids {
			tables[i], ids[i], uuids[i] = id.table, id.id, id.uuid
		}
		bk.Queue(`INSERT INTO shopmigrate.legacy_ids (tbl, legacy_id, id) SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[])
			ON CONFLICT DO NOTHING`, tables, ids, uuids)
	}
	if len(b.promos) > 0 {
		ids, codes := make([]int64, len(b.promos)), make([]string, len(b.promos))
		for i, k := range b.promos {
			ids[i], codes[i] = k.id, k.code
		}
		bk.Queue(`INSERT INTO shopmigrate.promo_codes (legacy_id, code) SELECT * FROM unnest($1::bigint[], $2::text[])
			ON CONFLICT (legacy_id) DO UPDATE SET code = excluded.code`, ids, codes)
	}
}

// limit is the keyset positions (rows, or parents) in a batch of st.
func (m *splitter) limit(st *step) int32 {
	limit := int32(min(m.cfg.BatchSize, 1<<30))
	if st.parentBatch > 0 {
		limit = max(1, limit/int32(st.parentBatch))
	}
	return limit
}
