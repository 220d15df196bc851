package relay

import (
	"context"
	"time"

	"github.com/google/uuid"

	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
)

// heartbeat renews the claim's lease every Lease/3 until ctx is done or the
// claim holds no row any more.
func (r *Relay) heartbeat(ctx context.Context, s *sender, claim uuid.UUID) {
	t := time.NewTicker(max(r.cfg.Lease/3, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := r.q.RenewLeases(ctx, productdb.RenewLeasesParams{
			Subscriber: s.sub.Name, ClaimID: claim, LeaseUntil: r.cfg.Now().Add(r.cfg.Lease),
		})
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.cfg.Logger.WarnContext(ctx, "relay: renewing a lease failed", "subscriber", s.sub.Name, "error", err)
		case n == 0:
			return
		}
	}
}

// release gives back the claim's rows that were never sent (the relay is
// shutting down): due at once for any relay, their attempt uncounted.
func (r *Relay) release(ctx context.Context, s *sender, claim uuid.UUID, unsent []item) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	ids := make([]uuid.UUID, len(unsent))
	for i, it := range unsent {
		ids[i] = it.row.EventID
	}
	n, err := r.q.ReleaseDeliveries(ctx, productdb.ReleaseDeliveriesParams{
		Subscriber: s.sub.Name, ClaimID: claim, Now: r.cfg.Now(), EventIds: ids,
	})
	if err != nil {
		r.cfg.Logger.WarnContext(ctx, "relay: giving back unsent events failed; they are due again when their lease ends",
			"subscriber", s.sub.Name, "events", len(ids), "error", err)
		return
	}
	r.metrics.releases.WithLabelValues(s.sub.Name).Add(float64(n))
	r.cfg.Logger.InfoContext(ctx, "relay: stopping; gave back unsent events", "subscriber", s.sub.Name, "events", n)
}
