package cartsvc_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/decoupledshop/shop/cartsvc"
	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// TestEventBurstScalesWithTheShare: a replica whose share of the global
// rate is 100 events/s (300/s over 3 replicas) has a bucket of one second
// of it, not of a full batch: a sender that halves its batches on
// ResourceExhausted gets at most its share plus one second of it through.
func TestEventBurstScalesWithTheShare(t *testing.T) {
	t.Parallel()
	const share = 100
	b := setup(t, withService(func(o *cartsvc.Options) { o.EventRate = share }))
	client := sink(b.cartURL, b.tokens["service"])
	const window, tick = 5 * time.Second, 50 * time.Millisecond
	batch, accepted := cartsvc.MaxEventBatch, 0
	for elapsed := time.Duration(0); elapsed < window; elapsed += tick {
		evs := make([]*eventsv1.Event, batch)
		for i := range evs {
			evs[i] = changed(uuid.NewString(), 1, "Thing", 100)
		}
		_, err := client.DeliverEvents(context.Background(), connect.NewRequest(&eventsv1.DeliverEventsRequest{Events: evs}))
		switch {
		case err == nil:
			accepted += batch
		case shoptest.Code(err) == connect.CodeResourceExhausted:
			batch = max(1, batch/2)
		default:
			t.Fatal(err)
		}
		b.clock.Advance(tick)
	}
	ratio := float64(accepted) / (share * window.Seconds())
	t.Logf("a sender halving its batches against a share of %d events/s for %s: %d accepted, %.2f× the share (the old burst of %d: 1.39×)",
		share, window, accepted, ratio, cartsvc.MaxEventBatch)
	if limit := 1 + 1/window.Seconds() + 0.01; ratio > limit {
		t.Fatalf("accepted %.2f× the share over %s, want at most %.2f× (one second of burst)", ratio, window, limit)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRunWarnsWhenReplicasShareTheDatabase: a replica started with
// --replicas 1 while another replica LISTENs on its database warns that
// the events rate is exceeded; with --replicas 2 it does not.
func TestRunWarnsWhenReplicasShareTheDatabase(t *testing.T) {
	t.Parallel()
	iss := shoptest.Issuer(t)
	dbURL := pgtest.NewDatabase(t, pgtest.CartSchema)
	// The other replica's listening session.
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = cartsvc.VersionsListener
	other, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close(context.Background()) })

	const warning = "other cartsvc replicas share this database but --replicas is 1"
	for _, tc := range []struct {
		replicas string
		warns    bool
	}{{"1", true}, {"2", false}} {
		addr := shoptest.FreeAddr(t)
		env := map[string]string{
			"ADDR": addr, "DATABASE_URL": dbURL, "OIDC_ISSUER_URL": iss.URL(), "DRAIN_DELAY": "-1s",
			"ADMIN_ADDR": "127.0.0.1:0", "PRODUCT_URL": "http://" + shoptest.FreeAddr(t), "REPLICAS": tc.replicas,
		}
		var logs syncBuffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- cartsvc.Run(ctx, nil, func(k string) string { return env[k] }, io.Discard, &logs) }()
		shoptest.WaitReady(t, "http://"+addr, 20*time.Second, done)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := strings.Contains(logs.String(), warning); got != tc.warns {
			t.Errorf("--replicas %s with another replica listening: warned %v, want %v; logs:\n%s", tc.replicas, got, tc.warns, logs.String())
		}
	}
}

// TestInboxRecordsTheDeliveringReplica: each inbox row names the sender
// replica from the call's Shop-Relay-Replica header (NULL without one), so
// the work of each relay can be told apart although they share a client.
func TestInboxRecordsTheDeliveringReplica(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := sink(b.cartURL, b.tokens["service"])
	deliver := func(replica string) *eventsv1.Event {
		ev := changed(uuid.NewString(), 1, "Thing", 100)
		req := connect.NewRequest(&eventsv1.DeliverEventsRequest{Events: []*eventsv1.Event{ev}})
		if replica != "" {
			req.Header().Set(cartsvc.RelayReplicaHeader, replica)
		}
		if _, err := client.DeliverEvents(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	a, bb, none := deliver("productsvc-0"), deliver("productsvc-1"), deliver("")
	for ev, want := range map[*eventsv1.Event]string{a: "productsvc-0", bb: "productsvc-1", none: ""} {
		var got *string
		if err := b.cartPool.QueryRow(context.Background(), "SELECT relay_replica FROM inbox WHERE event_id = $1", ev.Id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if (got == nil) != (want == "") || (got != nil && *got != want) {
			t.Errorf("inbox relay_replica of an event delivered by %q = %v, want %q (NULL without a header)", want, got, want)
		}
	}
}
