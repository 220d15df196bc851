package relay

import "context"

// Round runs one claim-and-deliver round for the named subscriber.
func (r *Relay) Round(ctx context.Context, subscriber string) (int, error) {
	for _, s := range r.senders {
		if s.sub.Name == subscriber {
			return r.round(ctx, s, true)
		}
	}
	panic("relay: no subscriber " + subscriber)
}

// AfterClaim sets a hook that runs between a claim and its delivery.
func (r *Relay) AfterClaim(f func(context.Context)) { r.afterClaim = f }

// BatchLimit is the subscriber's current events-per-call limit.
func (r *Relay) BatchLimit(subscriber string) int {
	for _, s := range r.senders {
		if s.sub.Name == subscriber {
			return s.batchLimit()
		}
	}
	panic("relay: no subscriber " + subscriber)
}
