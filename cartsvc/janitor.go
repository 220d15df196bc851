package cartsvc

import (
	"context"
	"log/slog"
	"time"

	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
)

// pruneBatch bounds the rows one prune statement deletes, so no statement
// holds locks for long.
const pruneBatch = 1000

// Prune deletes, in batches, the stored results of writes older than
// RequestRetention and the promo code holds of carts idle for longer than
// the hold idle time (which no longer count anyway), by the service's
// clock. It returns how many of each it deleted. Every replica may run it.
func (s *Service) Prune(ctx context.Context) (requests, holds int64, err error) {
	now := s.timestamp()
	for {
		n, err := s.q.PruneRequestResults(ctx, cartdb.PruneRequestResultsParams{Cutoff: now.Add(-RequestRetention), Batch: pruneBatch})
		requests += n
		if err != nil {
			return requests, holds, err
		}
		if n < pruneBatch {
			break
		}
	}
	for {
		n, err := s.q.PruneLapsedHolds(ctx, cartdb.PruneLapsedHoldsParams{Cutoff: s.holdCutoff(now), Batch: pruneBatch})
		holds += n
		if err != nil {
			return requests, holds, err
		}
		if n < pruneBatch {
			break
		}
	}
	return requests, holds, nil
}

// PruneInbox deletes, in batches, the inbox rows of events received longer
// than the inbox retention ago, by the service's clock, and returns how
// many it deleted. The products' version marks stay (a redelivery of such
// an old event is then STALE rather than DUPLICATE), and so do dead
// letters. Every replica may run it.
func (s *Service) PruneInbox(ctx context.Context) (int64, error) {
	cutoff := s.timestamp().Add(-s.inboxRetention)
	var total int64
	for {
		n, err := s.q.PruneInbox(ctx, cartdb.PruneInboxParams{Cutoff: cutoff, Batch: pruneBatch})
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
}

// RunJanitor calls Prune and PruneInbox every interval until ctx is done,
// logging what they did and any error.
func (s *Service) RunJanitor(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		requests, holds, err := s.Prune(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error("janitor: prune failed", "error", err)
		}
		inbox, err := s.PruneInbox(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error("janitor: pruning the inbox failed", "error", err)
		}
		if requests > 0 || holds > 0 || inbox > 0 {
			log.Info("janitor: pruned", "request_results", requests, "lapsed_holds", holds, "inbox", inbox)
		}
	}
}
