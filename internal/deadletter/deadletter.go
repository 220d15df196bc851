// Package deadletter holds what the DeadLetterService of every service
// shares: the rules for choosing dead letters and their wire form.
package deadletter

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/internal/shoperr"
	"github.com/decoupledshop/shop/internal/uuidarg"
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
		id, err := uuidarg.Parse(fmt.Sprintf("ids[%d]", i), r)
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
