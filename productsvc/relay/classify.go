package relay

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
)

// How the relay treats what a subscriber answers (docs/EVENTS.md keeps the
// same table for operators).
//
// A response carries one DeliveryResult per event:
//   - ACCEPTED, DUPLICATE, STALE and DEAD_LETTERED are final: the row is
//     deleted (a DEAD_LETTERED event now sits in the receiver's DLQ);
//   - a missing result, UNSPECIFIED, or a status this relay does not know is
//     transient for that event only: it is retried with backoff.
//
// A failed call fails all the events it carried:
//   - InvalidArgument and FailedPrecondition are permanent. For a single
//     event it goes to outbox_dead at once; a larger batch is split in
//     halves and each half sent again, until the events that fail alone are
//     found (the rest are delivered).
//   - ResourceExhausted halves the subscriber's batch limit and sends the
//     same events again in smaller batches at once; for a single event it is
//     transient.
//   - Everything else is transient and retried with backoff: Unavailable,
//     DeadlineExceeded, refused or reset connections (which Connect reports
//     as Unavailable), Unauthenticated and PermissionDenied (a receiver that
//     does not yet trust the issuer's new key, or a token revoked mid-flight;
//     the cached token is dropped on Unauthenticated), Internal, Unknown,
//     Unimplemented and NotFound (a receiver being deployed or a wrong URL,
//     which an operator fixes), Aborted, Canceled.
//
// A transient failure becomes final when the event has used MaxAttempts
// attempts or was queued more than MaxAge ago: it then goes to outbox_dead
// with the last error.

// permanent reports whether a failed call says the events themselves are
// bad, so that sending them again cannot help.
func permanent(code connect.Code) bool {
	return code == connect.CodeInvalidArgument || code == connect.CodeFailedPrecondition
}

// final reports whether a result status ends delivery of its event.
func final(s eventsv1.DeliveryStatus) bool {
	switch s {
	case eventsv1.DeliveryStatus_DELIVERY_STATUS_ACCEPTED,
		eventsv1.DeliveryStatus_DELIVERY_STATUS_DUPLICATE,
		eventsv1.DeliveryStatus_DELIVERY_STATUS_STALE,
		eventsv1.DeliveryStatus_DELIVERY_STATUS_DEAD_LETTERED:
		return true
	}
	return false
}

// maxReason bounds the error text kept in a row.
const maxReason = 1000

// reason renders a failed call for last_error: the Connect code and the
// receiver's message (which, by the shop's error rules, is safe to show),
// or the transport error.
func reason(err error) string {
	var s string
	var ce *connect.Error
	if errors.As(err, &ce) {
		s = fmt.Sprintf("%s: %s", ce.Code(), ce.Message())
	} else {
		s = err.Error()
	}
	return truncate(s)
}

func truncate(s string) string {
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason
	for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return s[:cut] + "…"
}
