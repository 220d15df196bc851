package productclient

import (
	"context"
	"errors"
	"slices"

	"github.com/google/uuid"
)

// flight is one fetch in progress; products and err are set before done is
// closed.
type flight struct {
	done     chan struct{}
	products map[uuid.UUID]Product
	err      error
}

// fetch returns the products ids resolved to, joining fetches in flight and
// starting one for the rest.
func (c *Client) fetch(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]Product, error) {
	f := &flight{done: make(chan struct{})}
	var own []uuid.UUID
	var flights []*flight
	c.mu.Lock()
	for _, id := range ids {
		if g, ok := c.inflight[id]; ok {
			if !slices.Contains(flights, g) {
				flights = append(flights, g)
			}
			c.shared.Add(1)
			continue
		}
		c.inflight[id] = f
		own = append(own, id)
	}
	c.mu.Unlock()
	if len(own) > 0 {
		flights = append(flights, f)
		go c.run(ctx, f, own)
	}
	out := make(map[uuid.UUID]Product, len(ids))
	var errs []error
	for _, g := range flights {
		select {
		case <-g.done:
		case <-ctx.Done():
			return out, ctx.Err()
		}
		for _, id := range ids {
			if p, ok := g.products[id]; ok {
				out[id] = p
			}
		}
		if g.err != nil {
			errs = append(errs, g.err)
		}
	}
	return out, errors.Join(errs...)
}

// run fetches ids for flight f. It outlives a cancelled caller (others may
// have joined) but not the caller's deadline.
func (c *Client) run(ctx context.Context, f *flight, ids []uuid.UUID) {
	fctx := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		fctx, cancel = context.WithDeadline(fctx, d)
		defer cancel()
	}
	products, err := c.batchGet(fctx, ids)
	fetched := c.now()
	f.products = make(map[uuid.UUID]Product, len(products))
	c.mu.Lock()
	for _, p := range products {
		if !p.Missing && p.Version < c.versions[p.ID] {
			c.rejected.Add(1)
			continue
		}
		f.products[p.ID] = p
		c.cache.SetWithTTL(key(p.ID), cached{Product: p, fetched: fetched}, 1, c.maxStale)
	}
	for _, id := range ids {
		if c.inflight[id] == f {
			delete(c.inflight, id)
		}
	}
	c.mu.Unlock()
	f.err = err
	close(f.done)
}
