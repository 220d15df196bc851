package productclient

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/decoupledshop/shop/cartsvc/productclient/producttest"
)

// refusedURL is the URL of a loopback port nothing listens on.
func refusedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestRetriesGoToAnotherAddress: with productsvc given as two addresses,
// one refusing connections, every lookup is answered: a failed attempt is
// retried on the other address, and the refusing one is passed over.
func TestRetriesGoToAnotherAddress(t *testing.T) {
	t.Parallel()
	live := producttest.Start(t)
	c, err := New(Config{BaseURL: refusedURL(t) + ", " + live.URL(), BreakerFailures: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const lookups = 50
	for i := range lookups {
		id := uuid.MustParse(live.Create("Thing", 100).Id)
		got, err := c.Lookup(context.Background(), []Want{{ID: id}})
		if err != nil || got[id].Name != "Thing" {
			t.Fatalf("lookup %d = %v, %v; want the product from the live address", i, got, err)
		}
	}
	t.Logf("%d lookups, one of two addresses refusing: all answered, %d calls in all, %d to the live address",
		lookups, c.Stats().Calls, live.Calls())
}

// TestUnreachableCatalogIsLoggedOnceWithItsCause: lookups that fail
// because productsvc refuses connections log one warning with the cause
// (rate-limited), not one per failure and not nothing.
func TestUnreachableCatalogIsLoggedOnceWithItsCause(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	c, err := New(Config{BaseURL: refusedURL(t), Retries: -1, BreakerFailures: 1000, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 10 {
		if _, err := c.Lookup(context.Background(), []Want{{ID: uuid.New(), Live: true}}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("lookup with productsvc refusing: %v, want ErrUnavailable", err)
		}
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	lines := strings.Count(out, "productsvc cannot be reached")
	if lines != 1 || !strings.Contains(out, "connection refused") {
		t.Fatalf("logs after 10 failed lookups:\n%s\nwant one warning naming the cause (connection refused)", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
