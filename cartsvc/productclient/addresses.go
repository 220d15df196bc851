package productclient

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
)

// downFor is how long an address whose call failed is passed over while
// another address has not failed.
const downFor = time.Second

// logEvery is the least time between two logs of productsvc being
// unreachable.
const logEvery = 10 * time.Second

// splitURLs parses a comma-separated list of productsvc base URLs (one, or
// one per replica); each must be an absolute http or https URL.
func splitURLs(list string) ([]string, error) {
	var urls []string
	for raw := range strings.SplitSeq(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%q is not an http or https URL", raw)
		}
		urls = append(urls, strings.TrimSuffix(raw, "/"))
	}
	if len(urls) == 0 {
		return nil, fmt.Errorf("no URL in %q", list)
	}
	return urls, nil
}

// addresses are productsvc's replicas as the client knows them: each call
// (each attempt) goes to the next address that has not failed within
// downFor, so a retry lands on another replica than the failed attempt.
// (A host name with several DNS records needs no list: the dialer tries
// each record when a connection is refused.)
type addresses struct {
	rpcs []productv1connect.ProductServiceClient
	urls []string
	next atomic.Uint64

	mu        sync.Mutex
	downUntil []time.Time
}

func newAddresses(urls []string, client connect.HTTPClient, opts []connect.ClientOption) *addresses {
	a := &addresses{urls: urls, downUntil: make([]time.Time, len(urls))}
	for _, u := range urls {
		a.rpcs = append(a.rpcs, productv1connect.NewProductServiceClient(client, u, opts...))
	}
	return a
}

// pick returns the index of the address for the next attempt.
func (a *addresses) pick(now time.Time) int {
	n := len(a.rpcs)
	start := int(a.next.Add(1) % uint64(n))
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range n {
		if j := (start + i) % n; !now.Before(a.downUntil[j]) {
			return j
		}
	}
	return start
}

// failed passes over address i for downFor.
func (a *addresses) failed(i int, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.downUntil[i] = now.Add(downFor)
}

// unavailableLog logs that productsvc could not be reached, with the
// cause, at most once per logEvery, counting the failures in between.
type unavailableLog struct {
	log *slog.Logger

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (l *unavailableLog) failed(now time.Time, err error) {
	l.mu.Lock()
	if !l.last.IsZero() && now.Sub(l.last) < logEvery {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.last = now
	suppressed := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	l.log.Warn("productsvc cannot be reached: carts answer from cached data (stale) or Unavailable",
		"error", err.Error(), "failures_not_logged", suppressed, "next_log_after", logEvery)
}
