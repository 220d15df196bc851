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

// RunJanitor calls Prune every interval until ctx is done, logging what it
// did and any error.
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
			continue
		}
		if requests > 0 || holds > 0 {
			log.Info("janitor: pruned", "request_results", requests, "lapsed_holds", holds)
		}
	}
}
