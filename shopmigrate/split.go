package shopmigrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

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
	closePools, err := m.open(ctx)
	if err != nil {
		rep.Outcome = err.Error()
		return rep, err
	}
	defer closePools()
	cps, fresh, err := m.check(ctx, rep)
	if err != nil {
		return rep, m.fail(rep, err)
	}
	if cfg.DryRun {
		return rep, m.plan(ctx, rep, cps)
	}
	if b := rep.blocking(); len(b) > 0 {
		rep.Outcome = fmt.Sprintf("Refused: %d blocking problems (listed below); nothing was written.", len(b))
		return rep, errors.New(rep.Outcome)
	}
	if err := m.begin(ctx, rep, fresh); err != nil {
		return rep, m.fail(rep, err)
	}
	phase := time.Now()
	if err := m.copy(ctx, rep, cps); err != nil {
		return rep, err
	}
	rep.CopySeconds = time.Since(phase).Seconds()
	phase = time.Now()
	if err := m.verify(ctx, rep); err != nil {
		return rep, m.fail(rep, err)
	}
	rep.VerifySeconds = time.Since(phase).Seconds()
	return rep, verdict(rep)
}

// open opens the three databases' pools; closePools closes those it
// opened.
func (m *splitter) open(ctx context.Context) (closePools func(), err error) {
	var opened []*pgxpool.Pool
	closePools = func() {
		for _, p := range opened {
			p.Close()
		}
	}
	for _, c := range []struct {
		name, url string
		pool      **pgxpool.Pool
	}{{"legacy", m.cfg.LegacyURL, &m.legacy}, {"product", m.cfg.ProductURL, &m.product}, {"cart", m.cfg.CartURL, &m.cart}} {
		if *c.pool, err = openPool(ctx, c.name, c.url); err != nil {
			closePools()
			return nil, err
		}
		opened = append(opened, *c.pool)
	}
	m.lq = legacydb.New(m.legacy)
	return closePools, nil
}

// check reads the checkpoints of both targets, decides the pass, runs the
// checks into rep.Problems and maps the users to subjects (fresh: those
// not stored yet). It writes nothing.
func (m *splitter) check(ctx context.Context, rep *Report) (cps map[string]*checkpoint, fresh []userRow, err error) {
	cps = map[string]*checkpoint{}
	for _, db := range []*pgxpool.Pool{m.product, m.cart} {
		got, err := checkpoints(ctx, db)
		if err != nil {
			return nil, nil, fmt.Errorf("read checkpoints: %w", err)
		}
		for k, v := range got {
			cps[k] = v
		}
	}
	rep.Pass, rep.Resumed = decidePass(cps)
	phase := time.Now()
	if rep.Problems, err = m.problems(ctx, len(cps) == 0); err != nil {
		return nil, nil, err
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
		return nil, nil, err
	}
	subjects, fresh, userProblems, err := m.cfg.Users.users(ctx, m.lq, stored)
	if err != nil {
		return nil, nil, err
	}
	m.subjects = subjects
	rep.Problems = append(rep.Problems, userProblems...)
	return cps, fresh, nil
}

// begin prepares the targets for a pass: their shopmigrate state, the
// fresh users, and the legacy clock reading the pass's tables start at.
func (m *splitter) begin(ctx context.Context, rep *Report, fresh []userRow) error {
	for _, db := range []struct {
		name string
		pool *pgxpool.Pool
	}{{"product", m.product}, {"cart", m.cart}} {
		if err := ensureState(ctx, db.pool, db.name); err != nil {
			return err
		}
	}
	n, err := storeUsers(ctx, m.cart, fresh)
	if err != nil {
		return err
	}
	rep.Changed += n
	// One legacy clock reading for every table this run starts: taken
	// before any of them is read, it is at or before each one's start.
	if m.mark, err = m.lq.LegacyNow(ctx); err != nil {
		return fmt.Errorf("read the legacy clock: %w", err)
	}
	return nil
}

// copy runs the pass over every table, then (catch-up passes) sweeps the
// rows deleted from the legacy database; a failure sets the outcome.
func (m *splitter) copy(ctx context.Context, rep *Report, cps map[string]*checkpoint) error {
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
			return fmt.Errorf("%s: %w", st.table, err)
		}
	}
	if rep.Pass > 1 {
		n, err := m.sweep(ctx, rep)
		if err != nil {
			rep.Outcome = fmt.Sprintf("Stopped removing rows deleted from the legacy database: %v. Rerun the same command.", err)
			return err
		}
		rep.Changed += n
	}
	return nil
}

// verdict sets the outcome of a verified pass: an error when the
// verification found differences.
func verdict(rep *Report) error {
	switch {
	case !rep.Verified:
		rep.Outcome = "Copied, but verification found differences (see the tables): were legacy writes still running? Freeze them and run again."
		return errors.New("verification found differences")
	case rep.Changed == 0:
		rep.Outcome = fmt.Sprintf("Nothing changed: the targets already held every legacy row (pass %d). Verified: counts and checksums match.", rep.Pass)
	default:
		rep.Outcome = fmt.Sprintf("Pass %d copied %d rows. Verified: counts and checksums match.", rep.Pass, rep.Changed)
	}
	return nil
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
