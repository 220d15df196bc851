package cartsvc

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/decoupledshop/shop/cartsvc/productclient"
	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
	"github.com/decoupledshop/shop/internal/pgdb"
)

// VersionsChannel is the notification channel on which every batch of
// applied product events announces the products' new versions, once, at
// the commit of its transaction: payload "<product id>:<version>", comma
// separated, or "@<RFC 3339 time>" when they do not fit in one payload:
// the marks raised at that time are then read from product_versions.
const VersionsChannel = "cart_product_versions"

// maxNotifyPayload is the longest notification payload PostgreSQL takes
// (8000 bytes), less a margin.
const maxNotifyPayload = 7900

// notifyVersions sends the one notification of a batch on
// VersionsChannel: every raised mark, "<id>:<version>" comma-separated,
// or, when they do not fit in a payload, "@<now>": the marks raised at now
// are then read from product_versions (see versionHandler).
func notifyVersions(ctx context.Context, q *cartdb.Queries, raised map[uuid.UUID]int64, now time.Time) error {
	if len(raised) == 0 {
		return nil
	}
	var b strings.Builder
	for id, v := range raised {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(versionPayload(id, v))
	}
	payload := b.String()
	if len(payload) > maxNotifyPayload {
		payload = "@" + now.Format(time.RFC3339Nano)
	}
	return q.NotifyProductVersion(ctx, payload)
}

// versionPayload is one raised mark in a VersionsChannel notification.
func versionPayload(product uuid.UUID, version int64) string {
	return product.String() + ":" + strconv.FormatInt(version, 10)
}

// parseVersionPayload reads one mark, "<product id>:<version>".
func parseVersionPayload(p string) (uuid.UUID, int64, bool) {
	idText, versionText, ok := strings.Cut(p, ":")
	if !ok {
		return uuid.Nil, 0, false
	}
	id, idErr := parseID("id", idText)
	version, err := strconv.ParseInt(versionText, 10, 64)
	return id, version, idErr == nil && err == nil && version > 0
}

// Catching up after a lost listening connection.
const (
	// catchUpSlack covers clock skew between replicas (each stamps the
	// marks it raises with its own clock).
	catchUpSlack = time.Minute
	// catchUpWindow: older marks cannot matter, since the product client keeps no
	// entry longer than its maximum staleness.
	catchUpWindow = productclient.DefaultMaxStale
	// maxCatchUp bounds the marks read at once (the product client's default
	// bound on marks).
	maxCatchUp = productclient.DefaultMaxEntries
)

// ListenForVersions keeps this replica's product cache in step with the
// events every replica applies, until ctx is done. It LISTENs on
// VersionsChannel over directURL (which must bypass any transaction-mode
// pooler) and hands each announced version to the product client's
// ObserveVersion, which stops older cached data from being served. A lost
// connection is retried every second; after each (re)connection the marks
// raised since the previous one (at most productclient.DefaultMaxStale ago) are
// read from product_versions, so nothing announced while it was down is
// missed. Errors are logged, never returned. The cart cache is used only
// from a caught-up connection until the next reconnection.
//
// The connection's application_name is VersionsListener, so that the
// replicas sharing a database can be counted (see OtherReplicas).
func (s *Service) ListenForVersions(ctx context.Context, directURL string) {
	h := &versionHandler{s: s, since: s.timestamp()}
	pgdb.Listen(ctx, pgdb.ListenConfig{
		URL: directURL, ApplicationName: VersionsListener, Channel: VersionsChannel, Handler: h,
		BeforeConnect: func() { s.carts.setLive(false) },
		Logger:        s.log, What: "events: listening for product versions",
	})
}

// versionHandler applies notifications and catches up after reconnects.
type versionHandler struct {
	s *Service

	mu    sync.Mutex
	since time.Time // marks raised from here on may not have been seen
}

func (h *versionHandler) HandleNotification(ctx context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	if at, ok := strings.CutPrefix(n.Payload, "@"); ok {
		since, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return nil
		}
		return h.observeSince(ctx, since)
	}
	for mark := range strings.SplitSeq(n.Payload, ",") {
		if id, version, ok := parseVersionPayload(mark); ok {
			h.s.products.ObserveVersion(id, version)
		}
	}
	return nil
}

// observeSince hands the marks raised at or after since to the product client.
func (h *versionHandler) observeSince(ctx context.Context, since time.Time) error {
	marks, err := h.s.q.ListProductVersionsSince(ctx, cartdb.ListProductVersionsSinceParams{Since: since, MaxRows: maxCatchUp})
	if err != nil {
		return err
	}
	for _, m := range marks {
		h.s.products.ObserveVersion(m.ProductID, m.Version)
	}
	return nil
}

// HandleBacklog runs once LISTEN is in place: every mark raised from then
// on is announced, and the ones raised since the previous connection are
// read here.
func (h *versionHandler) HandleBacklog(ctx context.Context, _ string, _ *pgx.Conn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.s.timestamp()
	since := h.since
	if oldest := now.Add(-catchUpWindow); since.Before(oldest) {
		since = oldest
	}
	if err := h.observeSince(ctx, since.Add(-catchUpSlack)); err != nil {
		return err
	}
	h.since = now
	h.s.carts.setLive(true)
	return nil
}

// VersionsListener is the application_name of ListenForVersions'
// connection: one per running replica.
const VersionsListener = "cartsvc-versions"

// OtherReplicas counts the other cartsvc replicas running on this
// database: the sessions named VersionsListener (call it before this
// replica's ListenForVersions connects).
func (s *Service) OtherReplicas(ctx context.Context) (int64, error) {
	return s.q.CountVersionListeners(ctx, VersionsListener)
}
