package shopload

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
)

// The scenarios that measure event delivery: the storm and the backlog.

// storm changes the prices of carted products as fast as the clients can
// and measures how fast cartsvc applies the events: delivered = acks −
// growth of the outbox over the window.
func (b *bench) storm(ctx context.Context) (RepResult, error) {
	b.settle(ctx, &RepResult{})
	lag := newLagSampler(b.cartPool)
	lagCtx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan struct{})
	go func() { defer close(lagDone); lag.run(lagCtx) }()
	queued0, err := outboxCount(ctx, b.productPool)
	if err != nil {
		stopLag()
		return RepResult{}, err
	}
	before := b.observe(ctx)
	st := Closed(ctx, b.cfg.Concurrency, b.cfg.StormDuration, b.cfg.MaxRequests, b.cfg.Timeout,
		b.shop.UpdateProduct(b.shop.CartProductIDs, NoRetry, lag.Track))
	queued1, err := outboxCount(ctx, b.productPool)
	r := b.result(ctx, before, st, st.OK+st.Failed)
	if err != nil {
		stopLag()
		return r, err
	}
	delivered := float64(st.OK - (queued1 - queued0))
	perSec, perAck := delivered/st.Elapsed.Seconds(), 0.0
	if st.OK > 0 {
		perAck = delivered / float64(st.OK)
	}
	r.EventsPerSec, r.AppliedPerAck = &perSec, &perAck
	if a0, ok := before.cart.appliedEvents(); ok {
		if a1, ok := Scrape(ctx, b.plainClient, b.tg.CartMetricsURL).appliedEvents(); ok {
			applied := (a1 - a0) / st.Elapsed.Seconds()
			r.AppliedMetricPerSec = &applied
		}
	}
	b.settle(ctx, &r)
	time.Sleep(20 * time.Millisecond) // the sampler's last look
	stopLag()
	<-lagDone
	p50, p99, n := lag.quantiles()
	if n > 0 {
		r.LagP50Ms, r.LagP99Ms = ptr(ms(p50)), ptr(ms(p99))
	}
	r.LagSamples = n
	return r, nil
}

// backlog freezes cartsvc (SIGSTOP), renames categories until the outbox
// holds at least cfg.Backlog events (one per product of the category),
// thaws cartsvc and measures how fast the outbox drains. CPU is per event.
func (b *bench) backlog(ctx context.Context) (RepResult, error) {
	b.settle(ctx, &RepResult{})
	if err := b.tg.FreezeCart(true); err != nil {
		return RepResult{}, err
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = b.tg.FreezeCart(false)
		}
	}
	defer thaw()
	mask := &fieldmaskpb.FieldMask{Paths: []string{"name"}}
	queued := 0
	for queued < b.cfg.Backlog {
		b.renames++
		id := b.shop.CategoryIDs[b.renames%len(b.shop.CategoryIDs)]
		_, err := b.shop.Clients.Categories.UpdateCategory(ctx, authed(&productv1.UpdateCategoryRequest{
			Category:   &productv1.Category{Id: id, Name: fmt.Sprintf("Load %d rename %d", b.renames%len(b.shop.CategoryIDs), b.renames)},
			UpdateMask: mask,
		}, b.shop.AdminAuth))
		if err != nil {
			return RepResult{}, fmt.Errorf("build the backlog: UpdateCategory: %w (code %s)", err, connect.CodeOf(err))
		}
		var err2 error
		if queued, err2 = outboxCount(ctx, b.productPool); err2 != nil {
			return RepResult{}, err2
		}
	}
	before := b.observeCPU()
	thaw()
	left, err := waitOutboxEmpty(ctx, b.productPool, b.cfg.BacklogTimeout)
	elapsed := time.Since(before.began)
	if err != nil {
		return RepResult{}, err
	}
	drained := queued - left
	st := &Stats{OK: drained, Errors: map[string]int{}, Elapsed: elapsed}
	r := b.result(ctx, before, st, drained)
	r.RPS, r.P50Ms, r.P99Ms = 0, 0, 0
	perSec := float64(drained) / elapsed.Seconds()
	r.EventsPerSec = &perSec
	r.Backlog = queued
	if left > 0 {
		r.addNote("%d of %d events drained within %s", drained, queued, b.cfg.BacklogTimeout)
		b.settle(ctx, &r)
	}
	return r, nil
}
