package productsvc

import (
	"context"

	"connectrpc.com/connect"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/deadletter"
	"github.com/decoupledshop/shop/internal/pagetoken"
)

// DeadLetterServer implements shop.events.v1.DeadLetterService over the
// outbox's dead letters (outbox_dead): events the relay gave up delivering
// to a subscriber. It is for admins (see Rules).
type DeadLetterServer struct {
	*Catalog
}

var _ eventsv1connect.DeadLetterServiceHandler = (*DeadLetterServer)(nil)

// ListDeadLetters pages through dead letters, newest first, in
// (create_time desc, id) order. A dead letter's peer is the subscriber, its
// reason the relay's last error.
func (s *DeadLetterServer) ListDeadLetters(ctx context.Context, req *connect.Request[eventsv1.ListDeadLettersRequest]) (*connect.Response[eventsv1.ListDeadLettersResponse], error) {
	size, err := pagetoken.Size(req.Msg.GetPageSize())
	if err != nil {
		return nil, err
	}
	const filters = "outbox_dead"
	cur, err := pagetoken.Decode(req.Msg.GetPageToken(), filters)
	if err != nil {
		return nil, err
	}
	afterID, err := cur.KeyUUID()
	if err != nil {
		return nil, err
	}
	rows, err := s.q.ListDeadLetters(ctx, productdb.ListDeadLettersParams{AfterTime: cur.CreateTime, AfterID: afterID, PageLimit: size + 1})
	if err != nil {
		return nil, err
	}
	rows, next := pagetoken.Page(rows, size, filters, func(d productdb.OutboxDead) pagetoken.Cursor {
		return pagetoken.Cursor{CreateTime: d.CreateTime, Key: d.ID.String()}
	})
	resp := &eventsv1.ListDeadLettersResponse{DeadLetters: make([]*eventsv1.DeadLetter, 0, len(rows)), NextPageToken: next}
	for _, d := range rows {
		m, err := deadletter.Message(d.ID, d.Event, d.Subscriber, d.LastError, d.Attempts, d.CreateTime)
		if err != nil {
			return nil, err
		}
		resp.DeadLetters = append(resp.DeadLetters, m)
	}
	return connect.NewResponse(resp), nil
}

// ReplayDeadLetters puts the chosen dead letters (ids, or all) back into
// the outbox with attempts reset, due now, and returns how many it put back.
// ids and all together are InvalidArgument; an empty request does nothing.
// Unknown ids are skipped.
func (s *DeadLetterServer) ReplayDeadLetters(ctx context.Context, req *connect.Request[eventsv1.ReplayDeadLettersRequest]) (*connect.Response[eventsv1.ReplayDeadLettersResponse], error) {
	ids, err := deadletter.IDs(req.Msg.GetIds(), req.Msg.GetAll())
	if err != nil {
		return nil, err
	}
	var n int64
	switch {
	case req.Msg.GetAll():
		n, err = s.q.ReplayAllDeadLetters(ctx, s.timestamp())
	case len(ids) > 0:
		n, err = s.q.ReplayDeadLetters(ctx, productdb.ReplayDeadLettersParams{Ids: ids, Now: s.timestamp()})
	}
	if err != nil {
		return nil, err
	}
	if n > 0 {
		s.notifier.Notify()
	}
	return connect.NewResponse(&eventsv1.ReplayDeadLettersResponse{ReplayedCount: n}), nil
}

// PurgeDeadLetters deletes the chosen dead letters (ids, or all) for good
// and returns how many it deleted. ids and all together are
// InvalidArgument; an empty request does nothing. Unknown ids are skipped.
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
