package relay

import (
	"context"
	"log/slog"
	"sync"
	"time"

	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
)

// DefaultNotifyInterval is the shortest time between two NOTIFYs of one
// Notifier.
const DefaultNotifyInterval = 50 * time.Millisecond

// notifyTimeout bounds one NOTIFY.
const notifyTimeout = 5 * time.Second

// Notifier wakes relays after a transaction that queued events has
// committed, without a NOTIFY inside that transaction (NOTIFY takes a
// cluster-wide lock at commit, which serialized every writer when the
// outbox's trigger sent one per transaction). Notify, called after the
// commit, never blocks and
//
//   - wakes at once every relay of this process created with the Notifier
//     (Config.Notifier);
//   - sends a NOTIFY on Channel through its own statement on db, at most once
//     per interval: the first Notify after a quiet interval sends at once,
//     later ones within the interval are folded into one sent when the
//     interval ends. Relays of other processes (replicas) LISTEN for it.
//
// A Notifier runs at most one goroutine, only while NOTIFYs are due. A lost
// NOTIFY only delays other replicas' relays until their next poll.
type Notifier struct {
	q        *productdb.Queries
	interval time.Duration
	logger   *slog.Logger

	mu      sync.Mutex
	local   []chan struct{} // wake channels of this process's relays (buffer 1)
	sending bool            // the goroutine runs: it sends, then waits out the interval
	pending bool            // a Notify came after the goroutine's last NOTIFY
}

// NewNotifier returns a Notifier that sends its NOTIFYs through db at most
// once per interval (DefaultNotifyInterval if interval <= 0); logger (nil:
// discard) hears of NOTIFYs that failed.
func NewNotifier(db productdb.DBTX, interval time.Duration, logger *slog.Logger) *Notifier {
	if interval <= 0 {
		interval = DefaultNotifyInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{q: productdb.New(db), interval: interval, logger: logger}
}

// Notify wakes the relays: this process's at once, other processes' with
// the next NOTIFY. It is safe for concurrent use and a no-op on a nil
// Notifier.
func (n *Notifier) Notify() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ch := range n.local {
		select {
		case ch <- struct{}{}:
		default: // already awake or about to be
		}
	}
	if n.sending {
		n.pending = true
		return
	}
	n.sending = true
	go n.send()
}

// send sends a NOTIFY, waits out the interval, and sends again while
// Notify was called meanwhile.
func (n *Notifier) send() {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		if err := n.q.NotifyOutbox(ctx); err != nil {
			n.logger.Warn("relay: notifying other replicas of new events failed; they find them at their next poll", "error", err)
		}
		cancel()
		time.Sleep(n.interval)
		n.mu.Lock()
		if !n.pending {
			n.sending = false
			n.mu.Unlock()
			return
		}
		n.pending = false
		n.mu.Unlock()
	}
}

// subscribe makes Notify wake ch (a channel with a buffer of one).
func (n *Notifier) subscribe(ch chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.local = append(n.local, ch)
}
