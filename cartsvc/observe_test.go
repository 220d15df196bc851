package cartsvc_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestLagAndDeadLettersAreMeasured: a first receipt is measured from its
// change's occurred_at on the service clock (a duplicate is not); poison
// counts in cartsvc_dead_letters, read from the DLQ at scrape time.
func TestLagAndDeadLettersAreMeasured(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if got := b.metric(t, "cartsvc_dead_letters"); got != "0" {
		t.Fatalf("cartsvc_dead_letters before any event = %q, want 0", got)
	}
	product := uuid.NewString()
	ev := changed(product, 1, "Kettle", 2500)
	ev.OccurredAt = timestamppb.New(start.Add(-3 * time.Second)) // the clock reads start
	b.deliver(t, ev)
	b.deliver(t, ev) // a duplicate
	for sample, want := range map[string]string{
		`cartsvc_event_lag_seconds_bucket{le="2.5"}`: "0",
		`cartsvc_event_lag_seconds_bucket{le="5"}`:   "1",
		`cartsvc_event_lag_seconds_count`:            "1",
	} {
		if got := b.metric(t, sample); got != want {
			t.Errorf("%s = %q, want %s (one first receipt, 3 s after its change)", sample, got, want)
		}
	}
	for _, poison := range poisons(product) {
		b.deliver(t, poison)
	}
	if got, want := b.metric(t, "cartsvc_dead_letters"), "9"; got != want {
		t.Errorf("cartsvc_dead_letters after 9 poison events = %q, want %s", got, want)
	}
}
