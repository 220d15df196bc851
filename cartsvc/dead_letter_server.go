package cartsvc

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
	"github.com/decoupledshop/shop/internal/deadletter"
	"github.com/decoupledshop/shop/internal/pagetoken"
)

// DeadLetterServer implements shop.events.v1.DeadLetterService over
// cartsvc's event_dlq: poison events it received but could not apply. It
// is for admins (see Rules).
type DeadLetterServer struct {
	*Service
}

var _ eventsv1connect.DeadLetterServiceHandler = (*DeadLetterServer)(nil)

// replayBatch is how many dead letters a replay of all reads at a time.
const replayBatch = 100

// ListDeadLetters pages through dead letters, newest first, in
// (create_time desc, id) order. A dead letter's peer is the service client
// that delivered it, its reason why it cannot be applied (after a failed
// replay, the replay's reason), its attempts the deliveries and replays
// that found it poison.
func (s *DeadLetterServer) ListDeadLetters(ctx context.Context, req *connect.Request[eventsv1.ListDeadLettersRequest]) (*connect.Response[eventsv1.ListDeadLettersResponse], error) {
	size, err := pagetoken.Size(req.Msg.GetPageSize())
	if err != nil {
		return nil, err
	}
	const filters = "event_dlq"
	cur, err := pagetoken.Decode(req.Msg.GetPageToken(), filters)
	if err != nil {
		return nil, err
	}
	afterID, err := cur.KeyUUID()
	if err != nil {
		return nil, err
	}
	rows, err := s.q.ListDeadLetters(ctx, cartdb.ListDeadLettersParams{AfterTime: cur.CreateTime, AfterID: afterID, PageLimit: size + 1})
	if err != nil {
		return nil, err
	}
	rows, next := pagetoken.Page(rows, size, filters, func(d cartdb.ListDeadLettersRow) pagetoken.Cursor {
		return pagetoken.Cursor{CreateTime: d.CreateTime, Key: d.ID.String()}
	})
	resp := &eventsv1.ListDeadLettersResponse{DeadLetters: make([]*eventsv1.DeadLetter, 0, len(rows)), NextPageToken: next}
	for _, d := range rows {
		m, err := deadletter.Message(d.ID, d.Event, d.Peer, d.Reason, d.Attempts, d.CreateTime)
		if err != nil {
			return nil, err
		}
		resp.DeadLetters = append(resp.DeadLetters, m)
	}
	return connect.NewResponse(resp), nil
}

// ReplayDeadLetters applies the chosen dead letters (ids, or all) again,
// oldest first, through the same path as a delivery, and returns how many
// left the queue: applied, or found to be duplicates or stale meanwhile.
// One that is still poison stays, with the new reason and one more
// attempt. ids and all together are InvalidArgument; an empty request does
// nothing; unknown ids are skipped. A failure that may pass (the database)
// is Unavailable; what was replayed before it stays replayed.
func (s *DeadLetterServer) ReplayDeadLetters(ctx context.Context, req *connect.Request[eventsv1.ReplayDeadLettersRequest]) (*connect.Response[eventsv1.ReplayDeadLettersResponse], error) {
	ids, err := deadletter.IDs(req.Msg.GetIds(), req.Msg.GetAll())
	if err != nil {
		return nil, err
	}
	var n int64
	switch {
	case req.Msg.GetAll():
		after, afterID := time.Time{}, uuid.Nil
		for {
			rows, err := s.q.ListDeadLettersAfter(ctx, cartdb.ListDeadLettersAfterParams{AfterTime: after, AfterID: afterID, Batch: replayBatch})
			if err != nil {
				return nil, err
			}
			for _, r := range rows {
				ok, err := s.replay(ctx, r.ID, r.Event, r.Peer)
				if err != nil {
					return nil, err
				}
				if ok {
					n++
				}
			}
			if len(rows) < replayBatch {
				break
			}
			after, afterID = rows[len(rows)-1].CreateTime, rows[len(rows)-1].ID
		}
	case len(ids) > 0:
		rows, err := s.q.GetDeadLetters(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			ok, err := s.replay(ctx, r.ID, r.Event, r.Peer)
			if err != nil {
				return nil, err
			}
			if ok {
				n++
			}
		}
	}
	return connect.NewResponse(&eventsv1.ReplayDeadLettersResponse{ReplayedCount: n}), nil
}

// replay applies one dead letter again and reports whether it left the
// queue.
func (s *DeadLetterServer) replay(ctx context.Context, id uuid.UUID, body []byte, peer string) (bool, error) {
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

func (s *DeadLetterServer) replayError(ctx context.Context, id uuid.UUID, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	s.log.ErrorContext(ctx, "events: replaying a dead letter failed", "dead_letter", id, "error", err)
	return errEventsUnavailable
}

// PurgeDeadLetters deletes the chosen dead letters (ids, or all) for good
// and returns how many it deleted. ids and all together are
// InvalidArgument; an empty request does nothing; unknown ids are skipped.
func (s *DeadLetterServer) PurgeDeadLetters(ctx context.Context, req *connect.Request[eventsv1.PurgeDeadLettersRequest]) (*connect.Response[eventsv1.PurgeDeadLettersResponse], error) {
	ids, err := deadletter.IDs(req.Msg.GetIds(), req.Msg.GetAll())
	if err != nil {
		return nil, err
	}
	var n int64
	switch {
	case req.Msg.GetAll():
		n, err = s.q.PurgeAllDeadLetters(ctx)
	case len(ids) > 0:
		n, err = s.q.PurgeDeadLetters(ctx, ids)
	}
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&eventsv1.PurgeDeadLettersResponse{PurgedCount: n}), nil
}
