package shopload

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
)

// TestCallRetries: what a retrying write reports when its budget ends.
func TestCallRetries(t *testing.T) {
	unavailable := connect.NewError(connect.CodeUnavailable, errors.New("database restarting"))
	deadline := connect.NewError(connect.CodeDeadlineExceeded, errors.New("deadline exceeded"))
	for _, tc := range []struct {
		name    string
		budget  time.Duration
		answers func(ctx context.Context, attempt int) error
		want    connect.Code
	}{
		{"a service that keeps saying retry: its last answer",
			300 * time.Millisecond,
			func(ctx context.Context, _ int) error { return unavailable },
			connect.CodeUnavailable},
		{"the service's DeadlineExceeded a moment before the client's, after retries: the retried answer",
			400 * time.Millisecond,
			func(ctx context.Context, attempt int) error {
				if attempt == 1 {
					return unavailable
				}
				d, _ := ctx.Deadline()
				time.Sleep(time.Until(d) - 20*time.Millisecond) // answered just before the client's deadline
				return deadline
			},
			connect.CodeUnavailable},
		{"an attempt held with plenty of time left: DeadlineExceeded",
			3 * time.Second,
			func(ctx context.Context, attempt int) error {
				if attempt == 1 {
					return unavailable
				}
				return deadline // at once, with ~3 s left
			},
			connect.CodeDeadlineExceeded},
		{"a first attempt held to the deadline: DeadlineExceeded",
			200 * time.Millisecond,
			func(ctx context.Context, _ int) error { <-ctx.Done(); return deadline },
			connect.CodeDeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tc.budget)
			defer cancel()
			attempt := 0
			err := call(ctx, RetryTransient, func() error { attempt++; return tc.answers(ctx, attempt) })
			if got := connect.CodeOf(err); got != tc.want {
				t.Errorf("call = %v (%d attempts), want code %v", err, attempt, tc.want)
			}
		})
	}
}
