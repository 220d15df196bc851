package cartsvc

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// The contract's limits of one DeliverEvents call.
const (
	MaxEventBatch      = 256
	MaxEventBatchBytes = 512 << 10
)

// EventSinkServer implements shop.events.v1.EventSinkService: productsvc's
// relay delivers catalog events here. Only service tokens with the
// events:write scope reach it (see Rules).
type EventSinkServer struct {
	*Service
}

var _ eventsv1connect.EventSinkServiceHandler = (*EventSinkServer)(nil)

// errEventsUnavailable fails a whole call when an event could not be
// handled for a reason that may pass; the sender retries the call.
var errEventsUnavailable = shoperr.Unavailable("events cannot be applied right now; retry later")

// DeliverEvents applies a batch and answers one result per distinct event
// id, in the order of first appearance (a repeated id in the same call is
// handled once). The call's events are applied together in one
// transaction, the events of one aggregate in their order (see
// receiveAll), and each gets its own result: applied
// (ACCEPTED), already received (DUPLICATE), not newer than what is known
// (STALE), accepted and ignored (ACCEPTED: CategoryChanged, unknown types),
// or poison (DEAD_LETTERED, with the reason); a bad event never fails the
// call.
//
// The call fails as a whole only with ResourceExhausted (more than
// MaxEventBatch events or MaxEventBatchBytes bytes, or more events than the
// caller's rate limit allows now; nothing is applied, and the sender halves
// its batches) and with Unavailable when an event could not be handled for
// a reason that may pass, such as the database being down (nothing of the
// call is then applied).
func (s *EventSinkServer) DeliverEvents(ctx context.Context, req *connect.Request[eventsv1.DeliverEventsRequest]) (*connect.Response[eventsv1.DeliverEventsResponse], error) {
	events := req.Msg.GetEvents()
	if len(events) > MaxEventBatch {
		s.metrics.refused.WithLabelValues("size").Inc()
		return nil, shoperr.ResourceExhausted("events: a call carries at most %d events, got %d; send smaller batches", MaxEventBatch, len(events))
	}
	if size := proto.Size(req.Msg); size > MaxEventBatchBytes {
		s.metrics.refused.WithLabelValues("size").Inc()
		return nil, shoperr.ResourceExhausted("events: a call carries at most %d bytes, got %d; send smaller batches", MaxEventBatchBytes, size)
	}
	peer := caller(ctx)
	if !s.limits.allow(peer, s.now(), len(events)) {
		s.metrics.refused.WithLabelValues("rate").Inc()
		return nil, shoperr.ResourceExhausted("events: more than %g events per second from this caller; slow down", float64(s.limits.limit))
	}
	// One result per distinct id, in order of first appearance.
	var todo []*eventsv1.Event
	seen := make(map[string]bool, len(events))
	for _, ev := range events {
		if !seen[ev.GetId()] {
			seen[ev.GetId()] = true
			todo = append(todo, ev)
		}
	}
	if replica := req.Header().Get(RelayReplicaHeader); replica != "" {
		ctx = withRelayReplica(ctx, storedText(replica, maxPeer))
	}
	actx, span := s.applySpan(ctx, todo)
	got, err := s.receiveAll(actx, todo, peer)
	s.endApply(span, todo, got, err)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.log.ErrorContext(ctx, "events: a batch could not be handled; failing the call", "error", err)
		return nil, errEventsUnavailable
	}
	results := make([]*eventsv1.DeliveryResult, len(todo))
	for i, ev := range todo {
		results[i] = &eventsv1.DeliveryResult{EventId: ev.GetId(), Status: got[i].out.status(), Reason: got[i].reason}
	}
	return connect.NewResponse(&eventsv1.DeliverEventsResponse{Results: results}), nil
}

// maxPeer bounds the caller's name as stored with each event, in bytes.
const maxPeer = 255

// RelayReplicaHeader names the sender's replica in a DeliverEvents call
// (productsvc's relay sets it); the inbox records it as relay_replica.
const RelayReplicaHeader = "Shop-Relay-Replica"

type relayReplicaKey struct{}

// withRelayReplica carries the delivering replica's name (may be empty)
// to the apply transaction.
func withRelayReplica(ctx context.Context, replica string) context.Context {
	return context.WithValue(ctx, relayReplicaKey{}, replica)
}

// relayReplica is the delivering replica's name carried by ctx, or "".
func relayReplica(ctx context.Context) string {
	r, _ := ctx.Value(relayReplicaKey{}).(string)
	return r
}

// caller names the service client of a verified service token: its
// client_id, else its subject (which equals it), in the form the inbox and
// dead letters store (see storedText).
func caller(ctx context.Context) string {
	id, ok := auth.FromContext(ctx)
	switch {
	case !ok:
		return ""
	case id.ClientID != "":
		return storedText(id.ClientID, maxPeer)
	}
	return storedText(id.Subject, maxPeer)
}
