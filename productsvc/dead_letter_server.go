package productsvc

import (
	"context"
	"time"

	"github.com/google/uuid"

	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/deadletter"
)

// deadLetters is the deadletter.Store of the outbox's dead letters
// (outbox_dead): events the relay gave up delivering to a subscriber. A
// dead letter's peer is the subscriber, its reason the relay's last error.
// Replaying puts a dead letter back into the outbox with attempts reset,
// due now, and wakes the relay.
type deadLetters struct {
	*Store
}

var _ deadletter.Store = deadLetters{}

// deadLetterScope names the outbox's dead letters in page tokens.
const deadLetterScope = "outbox_dead"

func (s deadLetters) List(ctx context.Context, afterTime time.Time, afterID uuid.UUID, limit int32) ([]deadletter.Letter, error) {
	rows, err := s.q.ListDeadLetters(ctx, productdb.ListDeadLettersParams{AfterTime: afterTime, AfterID: afterID, PageLimit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]deadletter.Letter, len(rows))
	for i, d := range rows {
		out[i] = deadletter.Letter{ID: d.ID, Event: d.Event, Peer: d.Subscriber, Reason: d.LastError, Attempts: d.Attempts, CreateTime: d.CreateTime}
	}
	return out, nil
}

func (s deadLetters) Replay(ctx context.Context, ids []uuid.UUID, all bool) (int64, error) {
	var n int64
	var err error
	if all {
		n, err = s.q.ReplayAllDeadLetters(ctx, s.timestamp())
	} else {
		n, err = s.q.ReplayDeadLetters(ctx, productdb.ReplayDeadLettersParams{Ids: ids, Now: s.timestamp()})
	}
	if n > 0 {
		s.notifier.Notify()
	}
	return n, err
}

func (s deadLetters) Purge(ctx context.Context, ids []uuid.UUID, all bool) (int64, error) {
	if all {
		return s.q.PurgeAllDeadLetters(ctx)
	}
	return s.q.PurgeDeadLetters(ctx, ids)
}
