// Package deadletter is the DeadLetterService of every service: the rules
// for listing and choosing dead letters and their wire form, over a Store
// each service implements on its own tables.
package deadletter

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	"github.com/decoupledshop/shop/internal/input"
	"github.com/decoupledshop/shop/internal/pagetoken"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// MaxIDs bounds the ids of one replay or purge request.
const MaxIDs = 1000

// IDs validates a replay or purge choice: ids or all, not both (an
// Invalid error naming "ids"), at most MaxIDs, each a UUID (an Invalid error
// naming "ids[i]"). Neither means the request does nothing.
func IDs(raw []string, all bool) ([]uuid.UUID, error) {
	if all && len(raw) > 0 {
		return nil, shoperr.Invalid("ids", "must be empty when all is set; choose ids or all")
	}
	if len(raw) > MaxIDs {
		return nil, shoperr.Invalid("ids", "must name at most %d dead letters, got %d", MaxIDs, len(raw))
	}
	ids := make([]uuid.UUID, len(raw))
	for i, r := range raw {
		id, err := input.UUID(fmt.Sprintf("ids[%d]", i), r)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}

// Message builds a DeadLetter from a stored row: its id, the event's
// protobuf bytes, the peer, the last error, attempts and creation time.
// Undecodable bytes are an internal error (the service stored them).
func Message(id uuid.UUID, event []byte, peer, reason string, attempts int32, created time.Time) (*eventsv1.DeadLetter, error) {
	ev := new(eventsv1.Event)
	if err := proto.Unmarshal(event, ev); err != nil {
		return nil, fmt.Errorf("dead letter %s: decode its event: %w", id, err)
	}
	return &eventsv1.DeadLetter{
		Id: id.String(), Event: ev, Peer: peer, Reason: reason,
		Attempts: attempts, CreateTime: timestamppb.New(created),
	}, nil
}

// Letter is a stored dead letter as a Store lists it.
type Letter struct {
	ID uuid.UUID
	// Event is the shop.events.v1.Event, protobuf binary.
	Event []byte
	// Peer is who the event was for or from; Reason why it is here.
	Peer, Reason string
	Attempts     int32
	CreateTime   time.Time
}

// Store is where a service keeps its dead letters.
type Store interface {
	// List returns at most limit dead letters after (afterTime, afterID)
	// in (create_time desc, id) order; the zero cursor starts at the
	// newest.
	List(ctx context.Context, afterTime time.Time, afterID uuid.UUID, limit int32) ([]Letter, error)
	// Replay puts the dead letters ids (every one when all) back to work
	// and returns how many left the queue.
	Replay(ctx context.Context, ids []uuid.UUID, all bool) (int64, error)
	// Purge deletes the dead letters ids (every one when all) and returns
	// how many it deleted.
	Purge(ctx context.Context, ids []uuid.UUID, all bool) (int64, error)
}

// Server implements shop.events.v1.DeadLetterService over a Store: the
// requests' rules (page sizes and tokens; ids or all, never both; an empty
// request does nothing; unknown ids are skipped) in one place. It is for
// admins: the caller mounts it behind its access rules.
type Server struct {
	store Store
	scope string
}

var _ eventsv1connect.DeadLetterServiceHandler = (*Server)(nil)

// NewServer returns the DeadLetterService of store; scope names its queue
// in page tokens, so a token of another list is refused.
func NewServer(scope string, store Store) *Server { return &Server{store: store, scope: scope} }

// ListDeadLetters pages through dead letters, newest first, in
// (create_time desc, id) order.
func (s *Server) ListDeadLetters(ctx context.Context, req *connect.Request[eventsv1.ListDeadLettersRequest]) (*connect.Response[eventsv1.ListDeadLettersResponse], error) {
	rows, next, err := pagetoken.List(req.Msg.GetPageSize(), req.Msg.GetPageToken(), s.scope,
		func(after pagetoken.Cursor, limit int32) ([]Letter, error) {
			afterID, err := after.KeyUUID()
			if err != nil {
				return nil, err
			}
			return s.store.List(ctx, after.CreateTime, afterID, limit)
		},
		func(d Letter) pagetoken.Cursor { return pagetoken.Cursor{CreateTime: d.CreateTime, Key: d.ID.String()} })
	if err != nil {
		return nil, err
	}
	resp := &eventsv1.ListDeadLettersResponse{DeadLetters: make([]*eventsv1.DeadLetter, 0, len(rows)), NextPageToken: next}
	for _, d := range rows {
		m, err := Message(d.ID, d.Event, d.Peer, d.Reason, d.Attempts, d.CreateTime)
		if err != nil {
			return nil, err
		}
		resp.DeadLetters = append(resp.DeadLetters, m)
	}
	return connect.NewResponse(resp), nil
}

// ReplayDeadLetters puts the chosen dead letters (ids, or all) back to
// work and returns how many left the queue.
func (s *Server) ReplayDeadLetters(ctx context.Context, req *connect.Request[eventsv1.ReplayDeadLettersRequest]) (*connect.Response[eventsv1.ReplayDeadLettersResponse], error) {
	n, err := s.choose(ctx, req.Msg.GetIds(), req.Msg.GetAll(), s.store.Replay)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&eventsv1.ReplayDeadLettersResponse{ReplayedCount: n}), nil
}

// PurgeDeadLetters deletes the chosen dead letters (ids, or all) for good
// and returns how many it deleted.
func (s *Server) PurgeDeadLetters(ctx context.Context, req *connect.Request[eventsv1.PurgeDeadLettersRequest]) (*connect.Response[eventsv1.PurgeDeadLettersResponse], error) {
	n, err := s.choose(ctx, req.Msg.GetIds(), req.Msg.GetAll(), s.store.Purge)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&eventsv1.PurgeDeadLettersResponse{PurgedCount: n}), nil
}

// choose validates a replay or purge choice and runs do on it; a request
// choosing nothing does nothing.
func (s *Server) choose(ctx context.Context, raw []string, all bool, do func(context.Context, []uuid.UUID, bool) (int64, error)) (int64, error) {
	ids, err := IDs(raw, all)
	if err != nil || (!all && len(ids) == 0) {
		return 0, err
	}
	return do(ctx, ids, all)
}
