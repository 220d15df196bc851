package pgdb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pipelined is a Beginner (give it to InTx) whose transactions send their
// statements in as few round trips as the caller's reads allow:
//
//   - Exec does not wait for an answer: the statement is queued and sent
//     with the transaction's next Query or QueryRow, or with COMMIT. Its
//     CommandTag is empty (no rows-affected count); its error, if any, is
//     returned by that later call. Use Exec only for statements whose count
//     the caller does not need.
//   - BEGIN is sent with the first statement that needs an answer; a
//     transaction that asks for none sends its queued statements and
//     nothing else, in one round trip, as one implicit transaction.
//   - Commit sends what is queued and COMMIT together.
//
// A write of "UPDATE … RETURNING, then INSERT" thus takes two round trips
// ([BEGIN, UPDATE] and [INSERT, COMMIT]) instead of four. The transaction
// takes its connection from Pool as InTx does (AcquireTimeout,
// ErrPoolExhausted) and gives it back at Rollback, which its user must
// defer as with any pgx.Tx. Savepoints (Begin), Prepare, CopyFrom,
// SendBatch and LargeObjects are not supported; statements run on Conn()
// directly bypass the queue.
type Pipelined struct{ Pool *pgxpool.Pool }

// Begin takes a connection for a pipelined transaction; nothing is sent yet.
func (p Pipelined) Begin(ctx context.Context) (pgx.Tx, error) {
	conn, err := acquire(ctx, p.Pool)
	if err != nil {
		return nil, err
	}
	return &pipeTx{conn: conn}, nil
}

// errPipeUnsupported is returned by the pgx.Tx methods a pipelined
// transaction does not offer.
var errPipeUnsupported = errors.New("pgdb: not supported in a pipelined transaction")

// pipeTx is a transaction of Pipelined.
type pipeTx struct {
	conn   *pgxpool.Conn // nil once released
	queued []*pgx.QueuedQuery
	begun  bool // BEGIN was answered
	done   bool // committed
}

// began reports whether BEGIN was answered: until then a failure is one of
// beginning, which InTx may retry (see retryableBegin).
func (t *pipeTx) began() bool { return t.begun }

// Exec queues sql; see Pipelined.
func (t *pipeTx) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.conn == nil || t.done {
		return pgconn.CommandTag{}, pgx.ErrTxClosed
	}
	t.queued = append(t.queued, &pgx.QueuedQuery{SQL: sql, Arguments: args})
	return pgconn.CommandTag{}, nil
}

// send sends BEGIN (unless begun or !begin), the queued statements and
// last (if not empty) in one batch, and reads the queued statements'
// answers; the caller reads last's answer from the returned results and
// closes them.
func (t *pipeTx) send(ctx context.Context, begin bool, last string, args ...any) (pgx.BatchResults, error) {
	if t.conn == nil || t.done {
		return nil, pgx.ErrTxClosed
	}
	b := &pgx.Batch{}
	if begin && !t.begun {
		b.Queue("begin")
	}
	b.QueuedQueries = append(b.QueuedQueries, t.queued...)
	queued := t.queued
	t.queued = nil
	if last != "" {
		b.Queue(last, args...)
	}
	br := t.conn.SendBatch(ctx, b)
	if begin && !t.begun {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, err
		}
		t.begun = true
	}
	for _, q := range queued {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, fmt.Errorf("%s: %w", statementName(q.SQL), err)
		}
	}
	return br, nil
}

// statementName names a statement in errors: sqlc's "-- name: X" comment,
// or its first line.
func statementName(sql string) string {
	first, _, _ := strings.Cut(sql, "\n")
	if name, ok := strings.CutPrefix(first, "-- name: "); ok {
		first, _, _ = strings.Cut(name, " ")
	}
	return first
}

// Query sends the queued statements and sql (after BEGIN, the first time)
// in one round trip and returns sql's rows.
func (t *pipeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	br, err := t.send(ctx, true, sql, args...)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// QueryRow is Query's single-row form.
func (t *pipeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return &rowOf{rows: rows, err: err}
}

// Commit sends the queued statements and COMMIT in one round trip; without
// BEGIN sent, just the queued statements (an implicit transaction).
func (t *pipeTx) Commit(ctx context.Context) error {
	if t.conn == nil || t.done {
		return pgx.ErrTxClosed
	}
	if !t.begun && len(t.queued) == 0 {
		t.done = true
		return nil
	}
	last := ""
	if t.begun {
		last = "commit"
	}
	br, err := t.send(ctx, false, last)
	if err != nil {
		return err
	}
	var tag pgconn.CommandTag
	if last != "" {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	t.done = true
	if last != "" && tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// Rollback rolls back what was begun and not committed, and returns the
// connection to the pool; later calls return pgx.ErrTxClosed.
func (t *pipeTx) Rollback(ctx context.Context) error {
	if t.conn == nil {
		return pgx.ErrTxClosed
	}
	conn := t.conn
	t.conn, t.queued = nil, nil
	defer conn.Release() // the pool drops a connection left in a transaction
	if conn.Conn().PgConn().TxStatus() == 'I' {
		return nil
	}
	_, err := conn.Exec(ctx, "rollback")
	return err
}

func (t *pipeTx) Begin(context.Context) (pgx.Tx, error) { return nil, errPipeUnsupported }

func (t *pipeTx) Prepare(context.Context, string, string) (*pgconn.StatementDescription, error) {
	return nil, errPipeUnsupported
}

func (t *pipeTx) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, errPipeUnsupported
}

func (t *pipeTx) SendBatch(_ context.Context, b *pgx.Batch) pgx.BatchResults {
	return pgx.FailedBatchResults(b, errPipeUnsupported)
}

// LargeObjects is not supported: the zero value fails on use.
func (t *pipeTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (t *pipeTx) Conn() *pgx.Conn {
	if t.conn == nil {
		return nil
	}
	return t.conn.Conn()
}

// batchRows are the rows of a batch's last statement; the batch is closed
// (freeing the connection) once they are read or closed.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.closeBatch()
	return false
}

func (r *batchRows) closeBatch() {
	if !r.closed {
		r.closed = true
		r.Rows.Close()
		r.err = r.br.Close()
	}
}

func (r *batchRows) Close() { r.closeBatch() }

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// rowOf is QueryRow's answer: the first row of rows, pgx.ErrNoRows if none.
type rowOf struct {
	rows pgx.Rows
	err  error
}

func (r *rowOf) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
