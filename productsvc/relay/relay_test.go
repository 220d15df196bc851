package relay_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/productsvc"
	"github.com/decoupledshop/shop/productsvc/relay"
)

func TestParseSubscribers(t *testing.T) {
	t.Parallel()
	subs, err := relay.ParseSubscribers(" cartsvc=http://cartsvc:8082/ , audit=https://audit.example/events")
	if err != nil {
		t.Fatal(err)
	}
	want := []relay.Subscriber{{Name: "cartsvc", URL: "http://cartsvc:8082"}, {Name: "audit", URL: "https://audit.example/events"}}
	if !slices.Equal(subs, want) {
		t.Fatalf("ParseSubscribers = %v, want %v", subs, want)
	}
	if subs, err := relay.ParseSubscribers(""); err != nil || len(subs) != 0 {
		t.Fatalf(`ParseSubscribers("") = %v, %v; want none`, subs, err)
	}
	for _, bad := range []string{"cartsvc", "Cart=http://x", "cartsvc=ftp://x", "cartsvc=http://", "a=http://x,a=http://y", "=http://x"} {
		if _, err := relay.ParseSubscribers(bad); err == nil {
			t.Errorf("ParseSubscribers(%q) succeeded, want an error", bad)
		}
	}
}

func TestBackoffSchedule(t *testing.T) {
	t.Parallel()
	b := relay.Backoff{Initial: time.Second, Multiplier: 2, Max: 15 * time.Minute, Jitter: 0.5}
	for n, want := range map[int]time.Duration{
		0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 10: 512 * time.Second,
		11: 15 * time.Minute, 12: 15 * time.Minute, 100: 15 * time.Minute,
	} {
		if got := b.Interval(n); got != want {
			t.Errorf("Interval(%d) = %s, want %s", n, got, want)
		}
	}
	// Jitter spreads each interval over [0.5, 1.5) of it, linearly in u.
	for _, tc := range []struct {
		n    int
		u    float64
		want time.Duration
	}{
		{1, 0, 500 * time.Millisecond},
		{1, 0.5, time.Second},
		{3, 0.25, 3 * time.Second},
		{11, 0, 450 * time.Second},
		{11, 0.75, 1125 * time.Second},
	} {
		if got := b.Delay(tc.n, tc.u); got != tc.want {
			t.Errorf("Delay(%d, %v) = %s, want %s", tc.n, tc.u, got, tc.want)
		}
	}
	for range 10000 {
		n := 1 + rand.IntN(20)
		d, iv := b.Delay(n, rand.Float64()), b.Interval(n)
		if d < iv/2 || d >= iv*3/2 {
			t.Fatalf("Delay(%d) = %s, outside [%s, %s)", n, d, iv/2, iv*3/2)
		}
	}
}

func TestDeliversEventsAndDeletesTheRows(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.newRelay(t, relay.Config{})
	products := b.publish(t, 5)

	n, err := r.Round(context.Background(), subscriber)
	if err != nil || n != 5 {
		t.Fatalf("Round = %d, %v; want 5 events claimed", n, err)
	}
	got := b.sink.Events()
	if len(got) != 5 {
		t.Fatalf("the sink got %d events, want 5", len(got))
	}
	byProduct := map[string]int{}
	for _, ev := range got {
		byProduct[ev.GetAggregateId()]++
		if ev.GetType() != productsvc.TypeProductChanged || ev.GetAggregateVersion() != 1 ||
			ev.GetProductChanged().GetId() != ev.GetAggregateId() {
			t.Errorf("event = %v; want a ProductChanged of its aggregate at version 1", ev)
		}
	}
	for _, id := range products {
		if byProduct[id.String()] != 1 {
			t.Errorf("product %s has %d events, want 1", id, byProduct[id.String()])
		}
	}
	if rows := b.outboxRows(t); len(rows) != 0 {
		t.Fatalf("%d outbox rows left after delivery, want none (delivered rows are deleted)", len(rows))
	}
	if subjects := b.sink.Subjects(); subjects["productsvc-relay"] != 1 {
		t.Fatalf("calls by token subject = %v, want one by productsvc-relay", subjects)
	}
}

func TestTransientFailuresBackOffThenDeadLetter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.newRelay(t, relay.Config{
		MaxAttempts: 4,
		Backoff:     relay.Backoff{Initial: time.Second, Multiplier: 2, Max: time.Minute, Jitter: 0.5},
		Rand:        func() float64 { return 0.25 }, // every delay is 0.75 × its interval
		// The backoff alone: no probing of the failing subscriber.
		ProbeInterval: -1,
	})
	b.publish(t, 3)
	b.sink.FailWith(connect.CodeUnavailable)
	ctx := context.Background()

	// Attempt n fails at t and is due again at t + 0.75 × 2^(n-1) s.
	for attempt, delay := range []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second} {
		failedAt := b.clock.Now()
		if n, err := r.Round(ctx, subscriber); err != nil || n != 3 {
			t.Fatalf("attempt %d: Round = %d, %v; want 3 claimed", attempt+1, n, err)
		}
		for id, row := range b.outboxRows(t) {
			if row.Attempts != attempt+1 || !row.NextAttemptAt.Equal(failedAt.Add(delay)) || row.LockedBy != nil || row.LockedUntil != nil {
				t.Fatalf("after attempt %d, row %s = %+v; want attempts %d, due at %s, unlocked",
					attempt+1, id, row, attempt+1, failedAt.Add(delay))
			}
			if !strings.Contains(row.LastError, "unavailable: told to fail") {
				t.Fatalf("last_error = %q, want the subscriber's Unavailable", row.LastError)
			}
		}
		b.clock.Advance(delay - time.Millisecond)
		if n, err := r.Round(ctx, subscriber); err != nil || n != 0 {
			t.Fatalf("1 ms before the next attempt is due: Round = %d, %v; want nothing claimed", n, err)
		}
		b.clock.Advance(time.Millisecond)
	}

	// The fourth attempt is the last.
	if n, err := r.Round(ctx, subscriber); err != nil || n != 3 {
		t.Fatalf("attempt 4: Round = %d, %v; want 3 claimed", n, err)
	}
	if rows := b.outboxRows(t); len(rows) != 0 {
		t.Fatalf("%d rows still queued after the last attempt, want none", len(rows))
	}
	dead := b.deadLetters(t)
	if len(dead) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dead))
	}
	for _, d := range dead {
		if d.Attempts != 4 || d.Subscriber != subscriber || !strings.Contains(d.LastError, "gave up after 4 attempts: unavailable") ||
			!d.CreateTime.Equal(b.clock.Now()) {
			t.Fatalf("dead letter = %+v; want 4 attempts, the last error, dead-lettered now", d)
		}
	}
}

func TestMaxAgeDeadLettersOnTheNextFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.newRelay(t, relay.Config{MaxAge: time.Hour, MaxAttempts: 1000})
	b.publish(t, 1)
	b.sink.FailWith(connect.CodeDeadlineExceeded)

	b.clock.Advance(59 * time.Minute)
	if _, err := r.Round(context.Background(), subscriber); err != nil {
		t.Fatal(err)
	}
	if rows, dead := b.outboxRows(t), b.deadLetters(t); len(rows) != 1 || len(dead) != 0 {
		t.Fatalf("a failure at 59 min: %d queued, %d dead; want it retried", len(rows), len(dead))
	}
	b.clock.Advance(2 * time.Minute)
	if _, err := r.Round(context.Background(), subscriber); err != nil {
		t.Fatal(err)
	}
	dead := b.deadLetters(t)
	if len(dead) != 1 || !strings.Contains(dead[0].LastError, "gave up after 2 attempts in 1h1m0s: deadline_exceeded") {
		t.Fatalf("a failure at 61 min: dead letters %+v; want one that gave up on age", dead)
	}
}

func TestMissingResultIsTransientForThatEventOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.newRelay(t, relay.Config{})
	b.publish(t, 4)
	ids := b.eventIDs(t)
	b.sink.Omit(ids[2].String())

	if _, err := r.Round(context.Background(), subscriber); err != nil {
		t.Fatal(err)
	}
	rows := b.outboxRows(t)
	row, ok := rows[ids[2]]
	if len(rows) != 1 || !ok || row.Attempts != 1 || !strings.Contains(row.LastError, "no result") {
		t.Fatalf("queued after delivery: %+v; want only the event without a result, to be retried", rows)
	}
	if b.sink.Count() != 3 {
		t.Fatalf("the sink accepted %d events, want 3", b.sink.Count())
	}
}

func TestResourceExhaustedHalvesTheBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.newRelay(t, relay.Config{})
	b.publish(t, 256)
	b.sink.LimitBatch(100)

	if n, err := r.Round(context.Background(), subscriber); err != nil || n != 256 {
		t.Fatalf("Round = %d, %v; want 256 claimed", n, err)
	}
	// 256 and 128 are refused; then 64 at a time fit.
	if got, want := b.sink.Batches(), []int{256, 128, 64, 64, 64, 64}; !slices.Equal(got, want) {
		t.Fatalf("batch sizes = %v, want %v", got, want)
	}
	if b.sink.Count() != 256 || len(b.outboxRows(t)) != 0 {
		t.Fatalf("%d delivered, %d queued; want all 256 delivered in the same round", b.sink.Count(), len(b.outboxRows(t)))
	}
	if got := r.BatchLimit(subscriber); got != 64 {
		t.Fatalf("batch limit = %d, want 64 for the next claims", got)
	}

	// A single event refused as too large is transient, not dead.
	b.sink.LimitBatch(0)
	b.sink.FailWith(connect.CodeResourceExhausted)
	b.publish(t, 1)
	if _, err := r.Round(context.Background(), subscriber); err != nil {
		t.Fatal(err)
	}
	if rows, dead := b.outboxRows(t), b.deadLetters(t); len(rows) != 1 || len(dead) != 0 {
		t.Fatalf("one event refused with ResourceExhausted: %d queued, %d dead; want it retried", len(rows), len(dead))
	}
}

func TestPermanentFailureDeadLettersOnlyTheRefusedEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.newRelay(t, relay.Config{})
	b.publish(t, 10)
	ids := b.eventIDs(t)
	poison := ids[6]
	b.sink.Refuse(poison.String())

	if _, err := r.Round(context.Background(), subscriber); err != nil {
		t.Fatal(err)
	}
	if b.sink.Count() != 9 {
		t.Fatalf("the sink accepted %d events, want the 9 good ones", b.sink.Count())
	}
	dead := b.deadLetters(t)
	if len(dead) != 1 || dead[0].EventID != poison || dead[0].Attempts != 1 ||
		!strings.Contains(dead[0].LastError, "refused the event: invalid_argument") {
		t.Fatalf("dead letters = %+v; want only %s, after one attempt, with the subscriber's error", dead, poison)
	}
	if rows := b.outboxRows(t); len(rows) != 0 {
		t.Fatalf("%d rows queued, want none", len(rows))
	}
	t.Logf("calls while isolating one refused event among 10: %v", b.sink.Batches())
}

func TestNoTokenSpendsNoAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.newRelay(t, relay.Config{Tokens: b.tokens(b.clock.Now, "wrong")})
	b.publish(t, 2)
	if _, err := r.Round(context.Background(), subscriber); err == nil || !strings.Contains(err.Error(), "access token") {
		t.Fatalf("Round with bad client credentials: %v; want an access-token error", err)
	}
	for id, row := range b.outboxRows(t) {
		if row.Attempts != 0 || row.LockedBy != nil {
			t.Fatalf("row %s = %+v; want untouched", id, row)
		}
	}
}

func TestTokenIsFetchedOnceAndReusedUntilNearExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.newRelay(t, relay.Config{})
	for range 5 {
		b.publish(t, 1)
		if n, err := r.Round(context.Background(), subscriber); err != nil || n != 1 {
			t.Fatalf("Round = %d, %v", n, err)
		}
	}
	if got := b.tokenFetches.Load(); got != 1 {
		t.Fatalf("5 deliveries fetched %d tokens, want 1", got)
	}
	// The dev issuer's tokens live 15 minutes; the relay replaces them one
	// minute before they expire.
	b.clock.Advance(14*time.Minute - time.Second)
	b.publish(t, 1)
	if _, err := r.Round(context.Background(), subscriber); err != nil {
		t.Fatal(err)
	}
	if got := b.tokenFetches.Load(); got != 1 {
		t.Fatalf("at 13:59 the relay fetched %d tokens in all, want still 1", got)
	}
	b.clock.Advance(time.Second)
	b.publish(t, 1)
	if _, err := r.Round(context.Background(), subscriber); err != nil {
		t.Fatal(err)
	}
	if got := b.tokenFetches.Load(); got != 2 {
		t.Fatalf("at 14:00 the relay fetched %d tokens in all, want 2", got)
	}
	if b.sink.Count() != 7 {
		t.Fatalf("the sink accepted %d events, want 7", b.sink.Count())
	}
}

func TestUnauthenticatedDropsTheCachedToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.newRelay(t, relay.Config{})
	b.publish(t, 1)
	b.sink.FailWith(connect.CodeUnauthenticated)
	if _, err := r.Round(context.Background(), subscriber); err != nil {
		t.Fatal(err)
	}
	rows := b.outboxRows(t)
	if len(rows) != 1 || len(b.deadLetters(t)) != 0 {
		t.Fatalf("after Unauthenticated: %d queued, %d dead; want the event retried", len(rows), len(b.deadLetters(t)))
	}
	b.sink.FailWith(0)
	b.clock.Advance(2 * time.Second) // past the first backoff (at most 1.5 s), far from the token's expiry
	if _, err := r.Round(context.Background(), subscriber); err != nil {
		t.Fatal(err)
	}
	if got := b.tokenFetches.Load(); got != 2 {
		t.Fatalf("token fetches = %d, want 2 (the refused token is not reused)", got)
	}
	if b.sink.Count() != 1 {
		t.Fatalf("the sink accepted %d events, want 1", b.sink.Count())
	}
}

func TestStoppedSubscriberIsRetriedUntilItIsBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.newRelay(t, relay.Config{Rand: func() float64 { return 0.5 }})
	b.publish(t, 3)
	b.sink.Stop()

	if _, err := r.Round(context.Background(), subscriber); err != nil {
		t.Fatal(err)
	}
	rows := b.outboxRows(t)
	for id, row := range rows {
		if row.Attempts != 1 || !strings.HasPrefix(row.LastError, "unavailable: ") || !row.NextAttemptAt.Equal(b.clock.Now().Add(time.Second)) {
			t.Fatalf("row %s after a refused connection = %+v; want attempt 1, unavailable, due in 1 s", id, row)
		}
	}
	t.Logf("last error with the subscriber down: %s", rows[b.eventIDs(t)[0]].LastError)

	b.sink.Restart()
	b.clock.Advance(time.Second)
	if n, err := r.Round(context.Background(), subscriber); err != nil || n != 3 {
		t.Fatalf("Round once the subscriber is back = %d, %v; want 3", n, err)
	}
	if b.sink.Count() != 3 || len(b.outboxRows(t)) != 0 {
		t.Fatalf("%d delivered, %d queued; want 3 and 0", b.sink.Count(), len(b.outboxRows(t)))
	}
}
