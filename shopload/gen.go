package shopload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
)

// Op is one request of a load. It returns the request's error, nil on
// success.
type Op func(ctx context.Context, w *Worker) error

// Worker is one client of a load: its random source and request ids.
type Worker struct {
	ID   int
	Rand *rand.Rand
	// Slot of Slots: a closed load's worker i of n, so that workers can
	// keep to their own share of the users (Slots is 0 in an open load).
	Slot, Slots int
	seq         uint64
	run         string
}

// Pick returns a random index below n, from the worker's share (the
// indexes equal to Slot modulo Slots) when n allows every worker one.
func (w *Worker) Pick(n int) int {
	k := w.Rand.IntN(n)
	if w.Slots == 0 || n < w.Slots {
		return k
	}
	k = k - k%w.Slots + w.Slot
	if k >= n {
		k -= w.Slots
	}
	return k
}

// RequestID returns an id no other request of this process has.
func (w *Worker) RequestID() string {
	w.seq++
	return w.run + "-" + strconv.Itoa(w.ID) + "-" + strconv.FormatUint(w.seq, 10)
}

// runID makes request ids unique across runs against the same databases.
var runID = strconv.FormatInt(time.Now().UnixNano(), 36)

var workerIDs atomic.Int64

func newWorker() *Worker {
	id := int(workerIDs.Add(1))
	return &Worker{ID: id, Rand: rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano()))), run: runID}
}

// maxSamples bounds the latencies a Stats keeps (its counts go on).
const maxSamples = 1 << 20

// Stats is what a load's requests came to.
type Stats struct {
	// OK and Failed count finished requests.
	OK, Failed int
	// Errors counts failures by Connect code (or "transport").
	Errors map[string]int
	// Elapsed is the load's wall time.
	Elapsed time.Duration
	lat     []time.Duration // of successful requests
}

func newStats() *Stats { return &Stats{Errors: map[string]int{}} }

func (s *Stats) record(lat time.Duration, err error) {
	if err == nil {
		s.OK++
		if len(s.lat) < maxSamples {
			s.lat = append(s.lat, lat)
		}
		return
	}
	s.Failed++
	s.Errors[ErrorCode(err)]++
}

func (s *Stats) merge(o *Stats) {
	s.OK += o.OK
	s.Failed += o.Failed
	for k, v := range o.Errors {
		s.Errors[k] += v
	}
	if room := maxSamples - len(s.lat); room > 0 {
		s.lat = append(s.lat, o.lat[:min(room, len(o.lat))]...)
	}
}

// RPS is successful requests per second.
func (s *Stats) RPS() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.OK) / s.Elapsed.Seconds()
}

// Quantile returns the q-quantile (0..1) of successful requests' latency.
func (s *Stats) Quantile(q float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	if !slices.IsSorted(s.lat) {
		slices.Sort(s.lat)
	}
	return s.lat[min(len(s.lat)-1, int(q*float64(len(s.lat))))]
}

// ErrorCode names err's kind: its Connect code, or "deadline_exceeded",
// "canceled" or "transport".
func ErrorCode(err error) string {
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		return ce.Code().String()
	case errors.Is(err, context.DeadlineExceeded):
		return connect.CodeDeadlineExceeded.String()
	case errors.Is(err, context.Canceled):
		return connect.CodeCanceled.String()
	default:
		return "transport"
	}
}

// Closed runs op on conc workers, each sending its next request when the
// last one answered, for dur or until max requests were sent, each
// request with its own timeout.
func Closed(ctx context.Context, conc int, dur time.Duration, max int, timeout time.Duration, op Op) *Stats {
	// Requests get their own deadline, not the load's: Connect sends the
	// deadline to the server, which would answer DeadlineExceeded to the
	// requests still running when the load ends. Those finish instead.
	end := time.Now().Add(dur)
	var sent atomic.Int64
	parts := make([]*Stats, conc)
	began := time.Now()
	var wg sync.WaitGroup
	for i := range conc {
		parts[i] = newStats()
		wg.Go(func() {
			w, st := newWorker(), parts[i]
			w.Slot, w.Slots = i, conc
			for ctx.Err() == nil && time.Now().Before(end) && sent.Add(1) <= int64(max) {
				rctx, rcancel := context.WithTimeout(ctx, timeout)
				start := time.Now()
				err := op(rctx, w)
				lat := time.Since(start)
				rcancel()
				if err != nil && ctx.Err() != nil {
					return // cut off by the caller, not an answer
				}
				st.record(lat, err)
			}
		})
	}
	wg.Wait()
	total := newStats()
	total.Elapsed = time.Since(began)
	for _, p := range parts {
		total.merge(p)
	}
	return total
}

// MixOp is one kind of request in a mixed load, chosen with probability
// Weight ÷ the weights' sum.
type MixOp struct {
	Name   string
	Weight int
	Op     Op
}

// OpenConfig configures Open.
type OpenConfig struct {
	// Rate is requests per second started, whatever the answers' speed.
	Rate float64
	// Duration of the load.
	Duration time.Duration
	// MaxInFlight bounds the requests waiting for an answer; a request
	// due while that many wait is not sent and counted as Skipped.
	MaxInFlight int
	// Timeout of each request.
	Timeout time.Duration
	// OnResult, if set, is called after every request (concurrently).
	OnResult func(op string, start time.Time, lat time.Duration, err error)
}

// OpenStats is what a mixed open-loop load came to, per kind.
type OpenStats struct {
	ByOp    map[string]*Stats
	Skipped int
}

// Open starts requests at a fixed rate (an open loop: a slow answer does
// not slow the load), chosen from mix by weight.
func Open(ctx context.Context, cfg OpenConfig, mix []MixOp) *OpenStats {
	total := 0
	for _, m := range mix {
		total += m.Weight
	}
	out := &OpenStats{ByOp: map[string]*Stats{}}
	for _, m := range mix {
		out.ByOp[m.Name] = newStats()
	}
	l := &openLoop{cfg: cfg, out: out, workers: sync.Pool{New: func() any { return newWorker() }},
		sem: make(chan struct{}, cfg.MaxInFlight)}
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	began := time.Now()
	end := began.Add(cfg.Duration)
	for next := began; next.Before(end) && ctx.Err() == nil; next = next.Add(interval) {
		if d := time.Until(next); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		l.start(ctx, pickOp(rng, mix, total))
	}
	l.wg.Wait()
	for _, s := range out.ByOp {
		s.Elapsed = time.Since(began)
	}
	return out
}

// pickOp picks an operation of mix by weight (total: the weights' sum).
func pickOp(rng *rand.Rand, mix []MixOp, total int) MixOp {
	pick := rng.IntN(total)
	m := mix[0]
	for _, c := range mix {
		if pick < c.Weight {
			m = c
			break
		}
		pick -= c.Weight
	}
	return m
}

// openLoop is the requests in flight of one Open.
type openLoop struct {
	cfg     OpenConfig
	mu      sync.Mutex // guards out
	out     *OpenStats
	workers sync.Pool
	sem     chan struct{} // a slot per request in flight
	wg      sync.WaitGroup
}

// start sends m's request on a goroutine of its own, or counts it
// skipped when MaxInFlight requests are waiting for answers.
func (l *openLoop) start(ctx context.Context, m MixOp) {
	select {
	case l.sem <- struct{}{}:
	default:
		l.mu.Lock()
		l.out.Skipped++
		l.mu.Unlock()
		return
	}
	l.wg.Go(func() {
		defer func() { <-l.sem }()
		w := l.workers.Get().(*Worker)
		defer l.workers.Put(w)
		rctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
		start := time.Now()
		err := m.Op(rctx, w)
		lat := time.Since(start)
		cancel()
		l.mu.Lock()
		l.out.ByOp[m.Name].record(lat, err)
		l.mu.Unlock()
		if l.cfg.OnResult != nil {
			l.cfg.OnResult(m.Name, start, lat, err)
		}
	})
}

// String summarises the stats in one line.
func (s *Stats) String() string {
	return fmt.Sprintf("%d ok, %d failed %v, %.0f/s, p50 %s, p99 %s", s.OK, s.Failed, s.Errors, s.RPS(),
		s.Quantile(0.5).Round(10*time.Microsecond), s.Quantile(0.99).Round(10*time.Microsecond))
}
