package shopmigrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	legacydb "github.com/decoupledshop/shop/gen/sqlc/legacy"
	"github.com/decoupledshop/shop/productsvc"
)

// SplitConfig configures a split of the legacy database into productsvc's
// and cartsvc's databases.
type SplitConfig struct {
	// LegacyURL is read only; ProductURL and CartURL are the services'
	// migrated databases, reached as their owners.
	LegacyURL, ProductURL, CartURL string
	// Currency is the shop currency legacy NUMERIC amounts are in.
	Currency string
	// Users decides the users' OIDC subjects.
	Users UserMapping
	// RoundFractions accepts amounts with fractions of a minor unit,
	// rounded half away from zero (each listed); without it they block.
	RoundFractions bool
	// BatchSize is the legacy rows per batch (one target transaction).
	BatchSize int
	// Overlap is how far before the previous pass's start a catch-up pass
	// looks for changed rows, for legacy transactions that were running
	// then and committed later.
	Overlap time.Duration
	// Subscribers are the names of productsvc's event subscribers (its
	// SUBSCRIBERS). A catch-up pass queues, for each, the events
	// productsvc itself would have written for the changes it copies into
	// productsvc's tables (ProductChanged, ProductDeleted,
	// CategoryChanged), in the same transaction, for productsvc's relay to
	// deliver. The first pass queues none: both sides start at version 1.
	Subscribers []string
	// Throttle pauses after every batch, to spare a live legacy database.
	Throttle time.Duration
	// CompareCopy times a plain COPY of each first-pass table's rows into
	// the table itself, for the report's ratio: each batch's rows are
	// COPYed in a transaction of their own, rolled back, right before the
	// batch is written, so both see the same table and the same load.
	CompareCopy bool
	// DryRun plans and reports, writing nothing.
	DryRun bool
	// Progress receives progress bars (nil: none).
	Progress io.Writer
	// Now is the clock (default time.Now).
	Now func() time.Time

	// failAfterBatches, when positive, makes the run fail after that many
	// committed batches (tests).
	failAfterBatches int
}

// splitter is one split run.
type splitter struct {
	cfg                   SplitConfig
	legacy, product, cart *pgxpool.Pool
	lq                    *legacydb.Queries
	events                *productsvc.Outbox
	// mark is the legacy clock when this run began: where the next pass
	// of a table this run starts reads from (less the overlap).
	mark     time.Time
	subjects map[int64]string
	// renamed lists, by legacy table, the rows the checks found a
	// duplicate of (name or SKU), which are copied renamed.
	renamed map[string][]int64
	batches int
}

func (m *splitter) db(name string) *pgxpool.Pool {
	if name == "product" {
		return m.product
	}
	return m.cart
}

// Split runs one pass of the split (see the README): the first copy, the
// rest of an interrupted pass, or a catch-up pass of the rows changed since
// the last one; then it verifies every table. It always returns a report,
// also with an error: blocking problems (nothing written), a failure
// midway (rerun to resume), or a verification that found differences.
func Split(ctx context.Context, cfg SplitConfig) (*Report, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 5000
	}
	rep := &Report{Mode: "split", DryRun: cfg.DryRun, Started: cfg.Now()}
	defer func() {
		rep.Finished = cfg.Now()
		rep.Seconds = rep.Finished.Sub(rep.Started).Seconds()
	}()
	m := &splitter{cfg: cfg, events: productsvc.NewOutbox(cfg.Subscribers, cfg.Now, nil)}
	var err error
	for _, c := range []struct {
		name, url string
		pool      **pgxpool.Pool
	}{{"legacy", cfg.LegacyURL, &m.legacy}, {"product", cfg.ProductURL, &m.product}, {"cart", cfg.CartURL, &m.cart}} {
		if *c.pool, err = openPool(ctx, c.name, c.url); err != nil {
			rep.Outcome = err.Error()
			return rep, err
		}
		defer (*c.pool).Close()
	}

	m.lq = legacydb.New(m.legacy)
	cps := map[string]*checkpoint{}
	for _, db := range []*pgxpool.Pool{m.product, m.cart} {
		got, err := checkpoints(ctx, db)
		if err != nil {
			return rep, m.fail(rep, fmt.Errorf("read checkpoints: %w", err))
		}
		for k, v := range got {
			cps[k] = v
		}
	}
	rep.Pass, rep.Resumed = decidePass(cps)
	phase := time.Now()
	if rep.Problems, err = m.problems(ctx, len(cps) == 0); err != nil {
		return rep, m.fail(rep, err)
	}
	rep.ChecksSeconds = time.Since(phase).Seconds()
	m.renamed = map[string][]int64{"products": {}, "categories": {}}
	for _, p := range rep.Problems {
		if p.Kind == "duplicate-sku" || p.Kind == "duplicate-category-name" {
			m.renamed[p.Table] = append(m.renamed[p.Table], p.LegacyID)
		}
	}
	stored, err := storedSubjects(ctx, m.cart)
	if err != nil {
		return rep, m.fail(rep, err)
	}
	subjects, fresh, userProblems, err := cfg.Users.users(ctx, m.lq, stored)
	if err != nil {
		return rep, m.fail(rep, err)
	}
	m.subjects = subjects
	rep.Problems = append(rep.Problems, userProblems...)

	if cfg.DryRun {
		return rep, m.plan(ctx, rep, cps)
	}
	if b := rep.blocking(); len(b) > 0 {
		rep.Outcome = fmt.Sprintf("Refused: %d blocking problems (listed below); nothing was written.", len(b))
		return rep, errors.New(rep.Outcome)
	}
	for _, db := range []struct {
		name string
		pool *pgxpool.Pool
	}{{"product", m.product}, {"cart", m.cart}} {
		if err := ensureState(ctx, db.pool, db.name); err != nil {
			return rep, m.fail(rep, err)
		}
	}
	n, err := storeUsers(ctx, m.cart, fresh)
	if err != nil {
		return rep, m.fail(rep, err)
	}
	rep.Changed += n
	// One legacy clock reading for every table this run starts: taken
	// before any of them is read, it is at or before each one's start.
	if m.mark, err = m.lq.LegacyNow(ctx); err != nil {
		return rep, m.fail(rep, fmt.Errorf("read the legacy clock: %w", err))
	}
	phase = time.Now()
	for _, st := range steps() {
		tr, err := m.runStep(ctx, st, rep.Pass, cps[st.table])
		if err == nil && m.cfg.CompareCopy && rep.Pass == 1 && tr.Written > 0 {
			// After the step, outside its time: the baseline is not part
			// of the copy it is compared with.
			err = m.baseline(ctx, st, &tr)
		}
		rep.Tables = append(rep.Tables, tr)
		rep.Changed += tr.Written
		if err != nil {
			rep.Outcome = fmt.Sprintf("Stopped in table %s: %v. Every committed batch is checkpointed: rerun the same command to resume.", st.table, err)
			return rep, fmt.Errorf("%s: %w", st.table, err)
		}
	}
	if rep.Pass > 1 {
		n, err := m.sweep(ctx, rep)
		if err != nil {
			rep.Outcome = fmt.Sprintf("Stopped removing rows deleted from the legacy database: %v. Rerun the same command.", err)
			return rep, err
		}
		rep.Changed += n
	}
	rep.CopySeconds = time.Since(phase).Seconds()
	phase = time.Now()
	if err := m.verify(ctx, rep); err != nil {
		return rep, m.fail(rep, err)
	}
	rep.VerifySeconds = time.Since(phase).Seconds()
	switch {
	case !rep.Verified:
		rep.Outcome = "Copied, but verification found differences (see the tables): were legacy writes still running? Freeze them and run again."
		return rep, errors.New("verification found differences")
	case rep.Changed == 0:
		rep.Outcome = fmt.Sprintf("Nothing changed: the targets already held every legacy row (pass %d). Verified: counts and checksums match.", rep.Pass)
	default:
		rep.Outcome = fmt.Sprintf("Pass %d copied %d rows. Verified: counts and checksums match.", rep.Pass, rep.Changed)
	}
	return rep, nil
}

// fail records err as the outcome and returns it.
func (m *splitter) fail(rep *Report, err error) error {
	rep.Outcome = "Failed: " + err.Error()
	return err
}

// openPool opens a pool on url, failing with a message naming the database.
func openPool(ctx context.Context, name, url string) (*pgxpool.Pool, error) {
	if url == "" {
		return nil, fmt.Errorf("the %s database URL is required", name)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%s database URL: %w", name, err)
	}
	// A shopmigrate query runs a few hundred times with other keyset
	// positions and since times: plan each for its values (a generic plan
	// cannot tell a first pass, reading every row, from a catch-up).
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		if err = pool.Ping(ctx); err != nil {
			pool.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s database: %w", name, err)
	}
	return pool, nil
}

// decidePass returns the pass to run: the first when there is no state,
// the unfinished one (resumed), or the next catch-up pass when every table
// finished the last.
func decidePass(cps map[string]*checkpoint) (pass int, resumed bool) {
	for _, c := range cps {
		pass = max(pass, c.pass)
	}
	if pass == 0 {
		return 1, false
	}
	for _, st := range steps() {
		if c := cps[st.table]; c == nil || c.pass < pass || !c.done {
			return pass, true
		}
	}
	return pass + 1, false
}

// since returns where a pass of a table begins reading: nil (everything)
// for the first, else the previous pass's start less the overlap.
func (m *splitter) since(pass int, cp *checkpoint) *time.Time {
	switch {
	case cp != nil && cp.pass == pass:
		return cp.since
	case cp == nil || pass == 1:
		return nil
	}
	s := cp.mark.Add(-m.cfg.Overlap)
	return &s
}

// plan fills a dry run's report: the rows each table's pass would read.
func (m *splitter) plan(ctx context.Context, rep *Report, cps map[string]*checkpoint) error {
	var total int64
	for _, st := range steps() {
		n, err := st.count(ctx, m.lq, m.since(rep.Pass, cps[st.table]))
		if err != nil {
			return m.fail(rep, fmt.Errorf("count %s: %w", st.table, err))
		}
		rep.Tables = append(rep.Tables, TableReport{Table: st.table, Database: st.db, LegacyRows: n})
		total += n
	}
	if err := m.orphans(ctx, rep, false); err != nil {
		return m.fail(rep, err)
	}
	rep.Outcome = fmt.Sprintf("Dry run of pass %d: it would read %d legacy rows; %d problems, %d of them blocking.",
		rep.Pass, total, len(rep.Problems), len(rep.blocking()))
	return nil
}

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
	var total int64
	if m.cfg.Progress != nil { // the count is for the bar only
		if total, err = st.count(ctx, m.lq, cp.since); err != nil {
			return tr, fmt.Errorf("count: %w", err)
		}
	}
	bar := newBar(m.cfg.Progress, total, st.table)
	defer bar.close()
	bar.add(cp.read)
	limit := m.limit(st)
	began := time.Now()
	var baseline time.Duration // the interleaved plain COPYs, not the copy's
	defer func() {
		tr.Seconds = (time.Since(began) - baseline).Seconds()
		if tr.Seconds > 0 {
			tr.RowsPerSecond = float64(tr.Written) / tr.Seconds
		}
	}()
	target := m.db(st.db)
	// The next batch is read from the legacy database while this one is
	// written: reading and writing overlap.
	batches, stop := m.readAhead(ctx, st, cp.lastID, cp.since, limit)
	defer stop()
	for r := range batches {
		if r.err != nil {
			return tr, fmt.Errorf("read legacy: %w", r.err)
		}
		b := r.b
		tr.ReadSeconds += r.seconds
		if m.cfg.CompareCopy && pass == 1 && len(b.rows) > 0 {
			d, err := plainCopy(ctx, target, st, b.rows)
			if err != nil {
				return tr, fmt.Errorf("plain COPY baseline: %w", err)
			}
			baseline += d
			tr.baselineRows, tr.baselineSeconds = tr.baselineRows+int64(len(b.rows)), tr.baselineSeconds+d.Seconds()
		}
		err = pgx.BeginFunc(ctx, target, func(tx pgx.Tx) error {
			var n int64
			// The batch's bookkeeping (legacy ids, promo code keys, the
			// checkpoint) goes in one round trip after its rows.
			bk := &pgx.Batch{}
			if b.keys > 0 {
				if n, err = m.write(ctx, st, tx, b, pass); err != nil {
					return err
				}
				queueKeys(bk, b, pass)
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
			return tr, fmt.Errorf("write batch after legacy id %d: %w", cp.lastID, err)
		}
		if b.keys > 0 {
			tr.Read += b.read
			tr.Batches++
			bar.add(b.read)
			m.batches++
		}
		if m.cfg.failAfterBatches > 0 && m.batches >= m.cfg.failAfterBatches {
			return tr, errInjected
		}
		if cp.done {
			break
		}
		if m.cfg.Throttle > 0 {
			select {
			case <-ctx.Done():
				return tr, ctx.Err()
			case <-time.After(m.cfg.Throttle):
			}
		}
	}
	if !cp.done {
		return tr, ctx.Err()
	}
	return tr, nil
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
