package cartsvc

import (
	"context"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
	"github.com/decoupledshop/shop/internal/deadletter"
)

// deadLetters is the deadletter.Store of cartsvc's event_dlq: poison
// events it received but could not apply. A dead letter's peer is the
// service client that delivered it, its reason why it cannot be applied
// (after a failed replay, the replay's reason), its attempts the
// deliveries and replays that found it poison.
//
// Replaying applies dead letters again, oldest first, through the same
// path as a delivery; one leaves the queue when applied or found to be a
// duplicate or stale meanwhile, and one still poison stays with the new
// reason and one more attempt. A failure that may pass (the database) is
// Unavailable; what was replayed before it stays replayed.
type deadLetters struct {
	*Service
}

var _ deadletter.Store = deadLetters{}

// deadLetterScope names event_dlq in page tokens.
const deadLetterScope = "event_dlq"

// replayBatch is how many dead letters a replay of all reads at a time.
const replayBatch = 100

func (s deadLetters) List(ctx context.Context, afterTime time.Time, afterID uuid.UUID, limit int32) ([]deadletter.Letter, error) {
	rows, err := s.q.ListDeadLetters(ctx, cartdb.ListDeadLettersParams{AfterTime: afterTime, AfterID: afterID, PageLimit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]deadletter.Letter, len(rows))
	for i, d := range rows {
		out[i] = deadletter.Letter{ID: d.ID, Event: d.Event, Peer: d.Peer, Reason: d.Reason, Attempts: d.Attempts, CreateTime: d.CreateTime}
	}
	return out, nil
}

func (s deadLetters) Replay(ctx context.Context, ids []uuid.UUID, all bool) (int64, error) {
	var n int64
	replay := func(id uuid.UUID, body []byte, peer string) error {
		ok, err := s.replay(ctx, id, body, peer)
		if ok {
			n++
		}
		return err
	}
	if !all {
		rows, err := s.q.GetDeadLetters(ctx, ids)
		if err != nil {
			return 0, err
		}
		for _, r := range rows {
			if err := replay(r.ID, r.Event, r.Peer); err != nil {
				return n, err
			}
		}
		return n, nil
	}
	after, afterID := time.Time{}, uuid.Nil
	for {
		rows, err := s.q.ListDeadLettersAfter(ctx, cartdb.ListDeadLettersAfterParams{AfterTime: after, AfterID: afterID, Batch: replayBatch})
		if err != nil {
			return n, err
		}
		for _, r := range rows {
			if err := replay(r.ID, r.Event, r.Peer); err != nil {
				return n, err
			}
		}
		if len(rows) < replayBatch {
			return n, nil
		}
		after, afterID = rows[len(rows)-1].CreateTime, rows[len(rows)-1].ID
	}
}

// replay applies one dead letter again and reports whether it left the
// queue.
func (s deadLetters) replay(ctx context.Context, id uuid.UUID, body []byte, peer string) (bool, error) {
	ev := new(eventsv1.Event)
	if err := proto.Unmarshal(body, ev); err != nil {
		err := s.q.RetainDeadLetter(ctx, cartdb.RetainDeadLetterParams{ID: id, Reason: "the stored event cannot be decoded", Now: s.timestamp()})
		return false, s.replayError(ctx, id, err)
	}
	out, _, err := s.receive(ctx, ev, peer, id)
	if err != nil {
		return false, s.replayError(ctx, id, err)
	}
	return out != outcomeDeadLettered, nil
}

func (s deadLetters) replayError(ctx context.Context, id uuid.UUID, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	s.log.ErrorContext(ctx, "events: replaying a dead letter failed", "dead_letter", id, "error", err)
	return errEventsUnavailable
}

func (s deadLetters) Purge(ctx context.Context, ids []uuid.UUID, all bool) (int64, error) {
	if all {
		return s.q.PurgeAllDeadLetters(ctx)
	}
	return s.q.PurgeDeadLetters(ctx, ids)
}
