package pgdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// acquire takes a connection from pool, waiting at most acquireWait(ctx).
func acquire(ctx context.Context, pool *pgxpool.Pool) (*pgxpool.Conn, error) {
	wait := acquireWait(ctx)
	actx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	conn, err := pool.Acquire(actx)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("acquire connection: %w (waited %v, %d of %d in use)",
				ErrPoolExhausted, wait, pool.Stat().AcquiredConns(), pool.Stat().MaxConns())
		}
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	return conn, nil
}

// acquireWait is how long to wait for a pooled connection: AcquireTimeout
// or half of what is left of ctx's deadline, whichever is shorter.
func acquireWait(ctx context.Context) time.Duration {
	wait := AcquireTimeout
	if deadline, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(deadline)/2)
	}
	return wait
}

// acquireDeadline is the pools' tracer: it bounds each Acquire by
// acquireWait (pgxpool.AcquireTracer) and traces nothing else.
type acquireDeadline struct{}

type acquireCancelKey struct{}

func (acquireDeadline) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	ctx, cancel := context.WithTimeout(ctx, acquireWait(ctx))
	return context.WithValue(ctx, acquireCancelKey{}, cancel)
}

func (acquireDeadline) TraceAcquireEnd(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireEndData) {
	if cancel, ok := ctx.Value(acquireCancelKey{}).(context.CancelFunc); ok {
		cancel()
	}
}

func (acquireDeadline) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (acquireDeadline) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
