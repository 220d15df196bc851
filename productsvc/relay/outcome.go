package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/pgdb"
)

// outcome is what a claim's rows come to after a call.
type outcome struct {
	done []uuid.UUID

	retryIDs    []uuid.UUID
	retryAt     []time.Time
	retryErrors []string

	deadEventIDs []uuid.UUID
	deadIDs      []uuid.UUID
	deadReasons  []string
}

func (o *outcome) empty() bool {
	return len(o.done)+len(o.retryIDs)+len(o.deadEventIDs) == 0
}

// kinds counts the kinds of outcome (delivered, retried, dead) o holds.
func (o *outcome) kinds() int {
	n := 0
	for _, k := range []int{len(o.done), len(o.retryIDs), len(o.deadEventIDs)} {
		if k > 0 {
			n++
		}
	}
	return n
}

// retry schedules the item's next attempt after a transient failure, or
// dead-letters it when it has used its attempts or age.
func (o *outcome) retry(r *Relay, it item, now time.Time, why string) {
	attempts := int(it.row.Attempts)
	switch age := now.Sub(it.row.CreateTime); {
	case attempts >= r.cfg.MaxAttempts:
		o.dead(r, it.row.EventID, fmt.Sprintf("gave up after %d attempts: %s", attempts, why))
	case age >= r.cfg.MaxAge:
		o.dead(r, it.row.EventID, fmt.Sprintf("gave up after %d attempts in %s: %s", attempts, age.Round(time.Second), why))
	default:
		o.retryIDs = append(o.retryIDs, it.row.EventID)
		o.retryAt = append(o.retryAt, now.Add(r.cfg.Backoff.Delay(attempts, r.cfg.Rand())))
		o.retryErrors = append(o.retryErrors, why)
	}
}

func (o *outcome) dead(r *Relay, eventID uuid.UUID, why string) {
	o.deadEventIDs = append(o.deadEventIDs, eventID)
	o.deadIDs = append(o.deadIDs, r.cfg.NewID())
	o.deadReasons = append(o.deadReasons, truncate(why))
}

// finishTimeout bounds recording an outcome, which runs even after the
// relay's context is cancelled.
const finishTimeout = 10 * time.Second

// finish records o atomically (one statement per kind of outcome, in one
// transaction when there are several), touching only rows the claim still
// holds (a row whose lease ran out may belong to another claim by now).
func (r *Relay) finish(ctx context.Context, s *sender, claim uuid.UUID, o outcome) error {
	if o.empty() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	var held int64
	var err error
	if o.kinds() == 1 {
		// One statement is atomic on its own: no BEGIN and COMMIT round
		// trips (the usual outcome, a batch all delivered).
		held, err = r.record(ctx, r.q, s, claim, &o)
	} else {
		err = pgdb.InTx(ctx, r.db, func(tx pgx.Tx) error {
			var err error
			held, err = r.record(ctx, r.q.WithTx(tx), s, claim, &o)
			return err
		})
	}
	if err != nil {
		return err
	}
	if want := int64(len(o.done) + len(o.retryIDs) + len(o.deadEventIDs)); held < want {
		r.cfg.Logger.InfoContext(ctx, "relay: lease lost before the outcome was recorded; another relay has the events",
			"subscriber", s.sub.Name, "events", want-held)
	}
	if n := len(o.deadEventIDs); n > 0 {
		r.cfg.Logger.WarnContext(ctx, "relay: events dead-lettered", "subscriber", s.sub.Name, "events", n, "reason", o.deadReasons[0])
	}
	return nil
}

// record writes o with q, one statement per kind of outcome, and returns
// how many of o's rows the claim still held.
func (r *Relay) record(ctx context.Context, q *productdb.Queries, s *sender, claim uuid.UUID, o *outcome) (int64, error) {
	var held int64
	if len(o.done) > 0 {
		n, err := q.DeleteDeliveries(ctx, productdb.DeleteDeliveriesParams{
			Subscriber: s.sub.Name, ClaimID: claim, EventIds: o.done,
		})
		if err != nil {
			return 0, fmt.Errorf("delete delivered events: %w", err)
		}
		held += n
	}
	if len(o.retryIDs) > 0 {
		n, err := q.RescheduleDeliveries(ctx, productdb.RescheduleDeliveriesParams{
			Subscriber: s.sub.Name, ClaimID: claim,
			EventIds: o.retryIDs, NextAttemptAts: o.retryAt, LastErrors: o.retryErrors,
		})
		if err != nil {
			return 0, fmt.Errorf("reschedule events: %w", err)
		}
		held += n
	}
	if len(o.deadEventIDs) > 0 {
		n, err := q.DeadLetterDeliveries(ctx, productdb.DeadLetterDeliveriesParams{
			Subscriber: s.sub.Name, ClaimID: claim, CreateTime: r.cfg.Now(),
			EventIds: o.deadEventIDs, Ids: o.deadIDs, Reasons: o.deadReasons,
		})
		if err != nil {
			return 0, fmt.Errorf("dead-letter events: %w", err)
		}
		held += n
	}
	return held, nil
}
