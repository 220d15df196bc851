package productsvc

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/pgdb"
)

// ChangesChannel is the notification channel on which every replica
// announces the products its committed writes changed, for the other
// replicas' read caches: payload "<id>,<id>,..." or "*" (all products).
const ChangesChannel = "shop_product_changes"

// ChangesInterval is the shortest time between two announcements of one
// replica: the first change after a quiet interval is announced at once,
// later ones within the interval together when it ends.
const ChangesInterval = 20 * time.Millisecond

// maxAnnounced is the most ids one announcement names (a NOTIFY payload
// holds under 8000 bytes); more are announced as "*".
const maxAnnounced = 200

// announcer sends the debounced NOTIFYs on ChangesChannel. Like
// relay.Notifier it never NOTIFYs inside a business transaction (NOTIFY
// takes a cluster-wide lock at commit) and runs at most one goroutine,
// only while announcements are due. A nil *announcer announces nothing.
type announcer struct {
	q   *productdb.Queries
	log *slog.Logger

	mu      sync.Mutex
	pending []uuid.UUID
	all     bool // more than maxAnnounced are pending
	sending bool
}

// announce queues ids for the next announcement.
func (a *announcer) announce(ids []uuid.UUID) {
	if a == nil || len(ids) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.all {
		a.pending = append(a.pending, ids...)
		if len(a.pending) > maxAnnounced {
			a.all, a.pending = true, a.pending[:0]
		}
	}
	if !a.sending {
		a.sending = true
		go a.send()
	}
}

// send announces what is pending, waits out ChangesInterval, and goes on
// while changes came meanwhile.
func (a *announcer) send() {
	var b strings.Builder
	for {
		a.mu.Lock()
		if !a.all && len(a.pending) == 0 {
			a.sending = false
			a.mu.Unlock()
			return
		}
		b.Reset()
		if a.all {
			b.WriteByte('*')
		}
		for i, id := range a.pending {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(id.String())
		}
		a.all, a.pending = false, a.pending[:0]
		a.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		if err := a.q.NotifyProductChanges(ctx, b.String()); err != nil {
			a.log.Warn("announcing changed products to other replicas failed; their read caches serve them for at most --read-cache-ttl", "error", err)
		}
		cancel()
		time.Sleep(ChangesInterval)
	}
}

// ChangesListener is the application_name of ListenForChanges' connection.
const ChangesListener = "productsvc-changes"

// notifyTimeout bounds one announcement.
const notifyTimeout = 5 * time.Second

// ListenForChanges keeps the read cache in step with every replica's
// writes until ctx is done: it LISTENs on ChangesChannel over directURL
// (which must bypass any transaction-mode pooler) and drops each announced
// product. The cache serves only while the listener is connected; after a
// (re)connection it starts empty, since announcements sent while it was
// away are lost. A lost connection is retried every second; errors are
// logged, never returned. Without EnableReadCache it returns at once.
func (c *Store) ListenForChanges(ctx context.Context, directURL string) {
	if c.cache == nil {
		return
	}
	defer c.cache.setLive(false)
	pgdb.Listen(ctx, pgdb.ListenConfig{
		URL: directURL, ApplicationName: ChangesListener, Channel: ChangesChannel, Handler: changeHandler{c.cache},
		BeforeConnect: func() { c.cache.setLive(false) },
		Logger:        c.log, What: "read cache: listening for other replicas' changes (cache off until reconnected)",
	})
}

// changeHandler drops announced products from a read cache.
type changeHandler struct{ cache *readCache }

// HandleBacklog runs once LISTEN is in place: from here on every change is
// heard, and the ones before may have been missed.
func (h changeHandler) HandleBacklog(context.Context, string, *pgx.Conn) error {
	h.cache.dropAll()
	h.cache.setLive(true)
	return nil
}

func (h changeHandler) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	if strings.HasPrefix(n.Payload, "*") {
		h.cache.dropAll()
		return nil
	}
	ids := make([]uuid.UUID, 0, strings.Count(n.Payload, ",")+1)
	for s := range strings.SplitSeq(n.Payload, ",") {
		if id, err := uuid.Parse(s); err == nil {
			ids = append(ids, id)
		}
	}
	h.cache.drop(ids)
	return nil
}

// changeRecorder is the Publisher of a Store with a read cache: it records
// which products each transaction changed (on its changeTx), then hands the
// call on.
type changeRecorder struct{ Publisher }

func (r changeRecorder) ProductsChanged(ctx context.Context, tx pgx.Tx, products []productdb.Product) error {
	if t, ok := tx.(*changeTx); ok {
		for _, p := range products {
			t.changed = append(t.changed, p.ID)
		}
	}
	return r.Publisher.ProductsChanged(ctx, tx, products)
}

func (r changeRecorder) ProductDeleted(ctx context.Context, tx pgx.Tx, id uuid.UUID, version int64) error {
	if t, ok := tx.(*changeTx); ok {
		t.changed = append(t.changed, id)
	}
	return r.Publisher.ProductDeleted(ctx, tx, id, version)
}

// changeTx is a write transaction of a Store with a read cache, collecting
// the products it changed.
type changeTx struct {
	pgx.Tx
	changed []uuid.UUID
}
