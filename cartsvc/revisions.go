package cartsvc

import (
	"context"
	"sync"
	"time"

	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
)

// Probing carts' revisions in batches.
const (
	// maxRevisionBatch bounds the users one probe asks for; a request
	// that finds the next batch full probes on its own.
	maxRevisionBatch = 256
	// revisionProbeTimeout bounds one probe, which serves several
	// requests and so runs on none of their contexts.
	revisionProbeTimeout = 5 * time.Second
)

// revisionProber reads carts' revisions (GetCartRevisions) for the cart
// cache, one query for the requests that arrive while the previous one
// runs: the first request probes at once, the ones arriving meanwhile
// join the next batch, which runs as soon as the probe in flight returns.
// Every probe starts after each request it answers arrived, so a request
// sees every cart write committed before it arrived.
type revisionProber struct {
	q *cartdb.Queries

	mu      sync.Mutex
	running bool           // a probe is in flight
	next    *revisionBatch // the requests waiting for the next probe
}

// revisionBatch is the users of one probe and, once done is closed, what
// it read: the revision of each user that has a cart, or err.
type revisionBatch struct {
	users     []string
	done      chan struct{}
	revisions map[string]int64
	err       error
}

// revision returns the revision of user's cart (0: no cart).
func (p *revisionProber) revision(ctx context.Context, user string) (int64, error) {
	p.mu.Lock()
	var b *revisionBatch
	switch {
	case !p.running:
		p.running = true
		b = &revisionBatch{users: []string{user}, done: make(chan struct{})}
		go p.run(b)
	case p.next == nil:
		p.next = &revisionBatch{users: []string{user}, done: make(chan struct{})}
		b = p.next
	case len(p.next.users) < maxRevisionBatch:
		b = p.next
		b.users = append(b.users, user)
	}
	p.mu.Unlock()
	if b == nil { // the next batch is full: probe alone
		revisions, err := p.read(ctx, []string{user})
		return revisions[user], err
	}
	select {
	case <-b.done:
		return b.revisions[user], b.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// run probes b's users (on a context of its own: the probe answers
// several requests, each of which waits only as long as its own context
// lets it), then starts the batch that gathered meanwhile (or lets the
// next request probe at once) and closes b.done.
func (p *revisionProber) run(b *revisionBatch) {
	ctx, cancel := context.WithTimeout(context.Background(), revisionProbeTimeout)
	b.revisions, b.err = p.read(ctx, b.users)
	cancel()
	p.mu.Lock()
	next := p.next
	p.next = nil
	p.running = next != nil
	p.mu.Unlock()
	if next != nil {
		go p.run(next)
	}
	close(b.done)
}

// read reads the revisions of users' carts (GetCartRevisions).
func (p *revisionProber) read(ctx context.Context, users []string) (map[string]int64, error) {
	rows, err := p.q.GetCartRevisions(ctx, users)
	revisions := make(map[string]int64, len(rows))
	for _, r := range rows {
		revisions[r.UserID] = r.Revision
	}
	return revisions, err
}
