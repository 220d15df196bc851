package productclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
)

// TestFailureClassification pins which errors count against productsvc
// (and are retried): Unavailable, DeadlineExceeded and transport errors;
// not the answers productsvc gives itself, nor cancellation.
func TestFailureClassification(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name      string
		err       error
		failure   bool
		retryable bool
	}{
		{"wire Unavailable", connect.NewWireError(connect.CodeUnavailable, errors.New("x")), true, true},
		{"wire DeadlineExceeded", connect.NewWireError(connect.CodeDeadlineExceeded, errors.New("x")), true, true},
		{"client-side deadline", connect.NewError(connect.CodeDeadlineExceeded, context.DeadlineExceeded), true, true},
		{"connection refused", connect.NewError(connect.CodeUnavailable, &net.OpError{Op: "dial", Err: errors.New("refused")}), true, true},
		{"broken response", connect.NewError(connect.CodeUnknown, io.ErrUnexpectedEOF), true, true},
		{"plain error", fmt.Errorf("wrapped: %w", io.EOF), true, true},
		{"wire NotFound", connect.NewWireError(connect.CodeNotFound, errors.New("x")), false, false},
		{"wire InvalidArgument", connect.NewWireError(connect.CodeInvalidArgument, errors.New("x")), false, false},
		{"wire Internal", connect.NewWireError(connect.CodeInternal, errors.New("x")), false, false},
		{"wire Canceled", connect.NewWireError(connect.CodeCanceled, errors.New("x")), false, false},
		{"context canceled", connect.NewError(connect.CodeCanceled, context.Canceled), false, false},
		{"connection reset", callError(context.Background(), connect.NewError(connect.CodeCanceled, syscall.ECONNRESET)), true, true},
		{"canceled call", callError(canceled, connect.NewError(connect.CodeCanceled, context.Canceled)), false, false},
		{"breaker open", ErrOpenState, true, false},
		{"half-open, probe taken", ErrTooManyRequests, true, false},
	}
	for _, c := range cases {
		if got := isFailure(c.err); got != c.failure {
			t.Errorf("%s: isFailure = %v, want %v", c.name, got, c.failure)
		}
		if got := retryable(c.err); got != c.retryable {
			t.Errorf("%s: retryable = %v, want %v", c.name, got, c.retryable)
		}
	}
}

// TestVersionMarksAreBounded: forgetting a mark to make room drops the
// product's cache entry too, so no entry outlives the mark that guards it.
func TestVersionMarksAreBounded(t *testing.T) {
	t.Parallel()
	c, err := New(Config{BaseURL: "http://127.0.0.1:1", MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, b, d := uuid.New(), uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{a, b} {
		c.cache.Set(key(id), cached{Product: Product{ID: id, Version: 5}}, 1)
	}
	c.Wait()
	c.ObserveVersion(a, 3) // older than the entry: kept
	c.ObserveVersion(b, 4)
	if _, ok := c.cache.Get(key(a)); !ok {
		t.Fatal("an entry newer than the observed version was dropped")
	}
	c.ObserveVersion(d, 1) // a third mark: one of a, b is forgotten with its entry
	c.Wait()
	if len(c.versions) != 2 {
		t.Fatalf("%d marks kept, want at most 2", len(c.versions))
	}
	for _, id := range []uuid.UUID{a, b} {
		_, marked := c.versions[id]
		_, cachedOK := c.cache.Get(key(id))
		if !marked && cachedOK {
			t.Errorf("the mark of %s was forgotten but its entry is still cached", id)
		}
	}
	c.ObserveVersion(a, 9)
	c.Wait()
	if _, ok := c.cache.Get(key(a)); ok {
		t.Error("an entry older than the observed version is still cached")
	}
}

// TestLiveLookupNeverServesCache: a Live want is answered only by
// productsvc; here it cannot be reached, so the product is absent although
// a fresh cache entry exists, while a normal want gets that entry.
func TestLiveLookupNeverServesCache(t *testing.T) {
	t.Parallel()
	c, err := New(Config{BaseURL: "http://127.0.0.1:1", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := uuid.New()
	c.cache.Set(key(id), cached{Product: Product{ID: id, Name: "cached", Version: 2}, fetched: c.now()}, 1)
	c.Wait()
	got, err := c.Lookup(context.Background(), []Want{{ID: id, MinVersion: 2}})
	if err != nil || got[id].Name != "cached" || got[id].Stale {
		t.Errorf("Lookup of a fresh entry = %v, %v; want it from the cache", got, err)
	}
	got, err = c.Lookup(context.Background(), []Want{{ID: id, Live: true}})
	if !errors.Is(err, ErrUnavailable) || len(got) != 0 {
		t.Errorf("Live lookup with productsvc unreachable = %v, %v; want nothing and ErrUnavailable", got, err)
	}
	got, _ = c.Lookup(context.Background(), []Want{{ID: id, MinVersion: 3}})
	if len(got) != 0 {
		t.Errorf("Lookup wanting version 3 = %v; want nothing (the entry is version 2)", got)
	}
}

// TestObserveProductIsVersionGated: a product's state from an event fills
// the cache only when it is not older than the product's mark, and never
// replaces newer data.
func TestObserveProductIsVersionGated(t *testing.T) {
	t.Parallel()
	c, err := New(Config{BaseURL: "http://127.0.0.1:1", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	id := uuid.New()
	get := func() (Entry, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		c.Wait()
		got, _ := c.Lookup(ctx, []Want{{ID: id}})
		e, ok := got[id]
		return e, ok && !e.Stale
	}
	c.ObserveProduct(Product{ID: id, Name: "v3", PriceMinor: 300, Currency: "EUR", Version: 3})
	if e, ok := get(); !ok || e.Name != "v3" {
		t.Fatalf("after ObserveProduct(v3): %+v, %v; want v3 from the cache", e, ok)
	}
	c.ObserveProduct(Product{ID: id, Name: "v2", PriceMinor: 200, Currency: "EUR", Version: 2})
	if e, ok := get(); !ok || e.Name != "v3" {
		t.Errorf("after an older ObserveProduct(v2): %+v, %v; want v3 kept", e, ok)
	}
	c.ObserveVersion(id, 5)
	if e, ok := get(); ok {
		t.Errorf("after the mark rose to 5: %+v served; want nothing older", e)
	}
	c.ObserveProduct(Product{ID: id, Name: "v4", Version: 4})
	if e, ok := get(); ok {
		t.Errorf("ObserveProduct(v4) below the mark 5: %+v served; want it ignored", e)
	}
	c.ObserveProduct(Product{ID: id, Name: "v5", PriceMinor: 500, Currency: "EUR", Version: 5})
	if e, ok := get(); !ok || e.Name != "v5" {
		t.Errorf("ObserveProduct(v5) at the mark: %+v, %v; want v5 served", e, ok)
	}
}
