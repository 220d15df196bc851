package scaletest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/decoupledshop/shop/shopload"
)

// TestLongRollingRestart restarts every replica in turn (SIGTERM, wait
// for it to exit, start it again, wait until it is ready), productsvc
// first, under mixed traffic at 100 requests/s whose writes retry
// Unavailable and ResourceExhausted (cart writes with the same
// request_id), clients balanced over ready replicas. On SIGTERM a replica
// reports not ready, keeps serving for its drain delay (1 s) while the
// balancer moves away, then finishes what is in flight and exits. Then:
// 0 failed requests, no acknowledged cart write lost or applied twice,
// every event delivered exactly once. Events claimed by a relay that
// stopped mid-lease may be late (until the lease of 10 s runs out), never
// lost or applied twice.
func TestLongRollingRestart(t *testing.T) {
	long(t)
	f := startFleet(t)
	var a answers
	ctx := context.Background()
	procs := append(f.st.ProductProcs(), f.st.CartProcs()...)
	const warm, gap = 5 * time.Second, 2 * time.Second
	type restart struct {
		name           string
		stopped, ready time.Duration
	}
	var restarts []restart
	var wg sync.WaitGroup
	began := time.Now()
	wg.Go(func() {
		time.Sleep(warm)
		for _, p := range procs {
			t0 := time.Now()
			p.Stop()
			stopped := time.Since(t0)
			if err := p.Start(time.Minute); err != nil {
				t.Errorf("restart %s: %v", p.Name, err)
				return
			}
			restarts = append(restarts, restart{p.Name, stopped, time.Since(t0)})
			time.Sleep(gap)
		}
	})
	// Long enough for every restart (each ≈ drain delay + start-up) and
	// some load after the last.
	loadFor := warm + time.Duration(len(procs))*(gap+drainDelay+4*time.Second) + 5*time.Second
	load := shopload.Open(ctx, shopload.OpenConfig{Rate: 100, Duration: loadFor, MaxInFlight: 256, Timeout: 10 * time.Second, OnResult: a.record}, f.mix())
	wg.Wait()
	for _, r := range restarts {
		t.Logf("restarted %-12s exited %s after SIGTERM, ready again %s after it", r.name, r.stopped.Round(time.Millisecond), r.ready.Round(time.Millisecond))
	}
	if len(restarts) != len(procs) {
		t.Fatalf("%d of %d replicas restarted", len(restarts), len(procs))
	}
	drained := f.waitDelivered(t, relayLease+90*time.Second)
	all, failed := a.totals()
	t.Logf("load %s at 100/s during %d restarts: %d requests (%d not sent: too many waiting), %d failed; answers:\n%s",
		loadFor, len(procs), all, load.Skipped, failed, a.String())
	t.Logf("outbox empty %s after the load ended (%s after it began)", drained.Round(time.Millisecond), time.Since(began).Round(time.Second))
	t.Logf("requests per replica (balancer): productsvc %v, cartsvc %v; cartsvc → productsvc %v; relays → cartsvc %v",
		f.lb.Sent("productsvc"), f.lb.Sent("cartsvc"), f.st.ProductProxy.Balancer.Sent("upstream"), f.st.CartProxy.Balancer.Sent("upstream"))
	if failed > 0 {
		t.Errorf("%d of %d requests failed during the rolling restart, want 0; first ones:\n  %v", failed, all, a.failed)
	}
	d := f.checkExactlyOnce(t)
	acked := f.checkCartWrites(t, 0)
	t.Logf("events: %d product versions made since events were on, %d received by cartsvc (outcomes %v); %d cart adds acknowledged", d.events, d.received, d.outcomes, acked)
}
