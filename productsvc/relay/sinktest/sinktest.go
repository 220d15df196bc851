// Package sinktest is a real EventSinkService for testing senders: a Connect
// handler on a loopback server behind the shop's token verification
// (DeliverEvents requires a service token), which records what it receives
// and can be told to fail, to be slow, or to stop listening.
package sinktest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/server"
	"github.com/decoupledshop/shop/internal/shoptest"
)

// Rules are the receiver's access rules: service tokens only.
var Rules = auth.Rules{eventsv1connect.EventSinkServiceDeliverEventsProcedure: auth.Service}

// Sink is a running EventSinkService. It answers ACCEPTED for an event id
// it has not accepted before and DUPLICATE for one it has, unless told
// otherwise. Its methods are safe for concurrent use.
type Sink struct {
	t        testing.TB
	verifier *auth.Verifier
	addr     string

	mu sync.Mutex
	// behaviour
	failCode   connect.Code    // fail every call with this code (0: none)
	maxEvents  int             // ResourceExhausted above this many events (0: no limit)
	refuse     map[string]bool // event ids that make the whole call InvalidArgument
	omit       map[string]bool // event ids answered without a result
	delay      time.Duration   // each call takes at least this long
	stop, done func()
	// records
	events     []*eventsv1.Event // accepted, in arrival order, first delivery of each id
	deliveries map[string]int    // deliveries per event id (all answered calls)
	inFlight   map[string]int    // calls currently carrying each event id
	overlaps   int               // times an event id was in two calls at once
	calls      int               // calls being handled now
	maxCalls   int               // most calls handled at once
	batches    []int             // sizes of all calls that reached the handler
	subjects   map[string]int    // calls per token subject
	replicas   map[string]int    // calls per Shop-Relay-Replica header
	arrived    chan struct{}
}

// Start serves a sink on a fresh loopback port, trusting tokens from iss,
// until the test ends.
func Start(t testing.TB, iss *devissuer.Issuer) *Sink {
	t.Helper()
	s := &Sink{
		t:          t,
		verifier:   shoptest.Verifier(t, iss),
		refuse:     map[string]bool{},
		omit:       map[string]bool{},
		deliveries: map[string]int{},
		inFlight:   map[string]int{},
		subjects:   map[string]int{},
		replicas:   map[string]int{},
		arrived:    make(chan struct{}, 1),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sinktest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

// URL is the sink's base URL.
func (s *Sink) URL() string { return "http://" + s.addr }

func (s *Sink) serve(ln net.Listener) {
	srv := server.New(shoptest.ServerConfig(s.t, nil))
	path, h := eventsv1connect.NewEventSinkServiceHandler(s, server.HandlerOptions(server.Config{})...)
	srv.Handle(path, auth.Middleware(s.verifier, Rules, h))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, ln); err != nil {
			s.t.Errorf("sinktest: serve: %v", err)
		}
	}()
	s.stop, s.done = cancel, func() { <-done }
}

// Stop closes the listener (connections are refused) and waits for calls
// in flight. It does nothing when the sink is stopped.
func (s *Sink) Stop() {
	s.mu.Lock()
	stop, done := s.stop, s.done
	s.stop, s.done = nil, nil
	s.mu.Unlock()
	if stop != nil {
		stop()
		done()
	}
}

// Restart listens again on the same address after Stop.
func (s *Sink) Restart() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("sinktest: listen again on %s: %v", s.addr, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serve(ln)
}

// FailWith makes every call fail with code (0 restores normal service).
func (s *Sink) FailWith(code connect.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCode = code
}

// LimitBatch makes calls with more than n events fail with
// ResourceExhausted (0: no limit).
func (s *Sink) LimitBatch(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxEvents = n
}

// Refuse makes any call carrying one of ids fail with InvalidArgument, as a
// receiver that validates whole batches would; Refuse() with no ids clears
// the list.
func (s *Sink) Refuse(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ids) == 0 {
		clear(s.refuse)
	}
	for _, id := range ids {
		s.refuse[id] = true
	}
}

// Omit answers calls carrying one of ids without a result for it;
// Omit() with no ids clears the list.
func (s *Sink) Omit(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ids) == 0 {
		clear(s.omit)
	}
	for _, id := range ids {
		s.omit[id] = true
	}
}

// Slow makes every call take at least d.
func (s *Sink) Slow(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// DeliverEvents implements EventSinkService.
func (s *Sink) DeliverEvents(ctx context.Context, req *connect.Request[eventsv1.DeliverEventsRequest]) (*connect.Response[eventsv1.DeliverEventsResponse], error) {
	events := req.Msg.GetEvents()
	told := s.arrive(ctx, req)
	defer s.leave(events)
	if told.delay > 0 {
		select {
		case <-time.After(told.delay):
		case <-ctx.Done():
			return nil, connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
		}
	}
	if err := told.failure(len(events)); err != nil {
		return nil, err
	}
	resp := s.answer(events)
	select {
	case s.arrived <- struct{}{}:
	default:
	}
	return connect.NewResponse(resp), nil
}

// behaviour is what a call was told to do when it arrived.
type behaviour struct {
	delay     time.Duration
	code      connect.Code
	maxEvents int
	refused   bool // it carries a refused event
}

// failure is the error a call of n events was told to fail with, or nil.
func (t behaviour) failure(n int) error {
	switch {
	case t.code != 0:
		return connect.NewError(t.code, fmt.Errorf("told to fail with %s", t.code))
	case t.maxEvents > 0 && n > t.maxEvents:
		return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("at most %d events per call", t.maxEvents))
	case t.refused:
		return connect.NewError(connect.CodeInvalidArgument, errors.New("events: a refused event"))
	}
	return nil
}

// arrive records a call that reached the handler (its size, token
// subject, replica, and its events in flight) and returns what it is told
// to do.
func (s *Sink) arrive(ctx context.Context, req *connect.Request[eventsv1.DeliverEventsRequest]) behaviour {
	events := req.Msg.GetEvents()
	id, _ := auth.FromContext(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, len(events))
	s.subjects[id.Subject]++
	s.replicas[req.Header().Get("Shop-Relay-Replica")]++
	s.calls++
	s.maxCalls = max(s.maxCalls, s.calls)
	for _, ev := range events {
		s.inFlight[ev.GetId()]++
		if s.inFlight[ev.GetId()] > 1 {
			s.overlaps++
		}
	}
	t := behaviour{delay: s.delay, code: s.failCode, maxEvents: s.maxEvents}
	for _, ev := range events {
		t.refused = t.refused || s.refuse[ev.GetId()]
	}
	return t
}

// leave records that a call carrying events was answered.
func (s *Sink) leave(events []*eventsv1.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range events {
		s.inFlight[ev.GetId()]--
	}
	s.calls--
}

// answer accepts events not seen before, counts the deliveries, and
// returns the results: ACCEPTED or DUPLICATE, none for an omitted event.
func (s *Sink) answer(events []*eventsv1.Event) *eventsv1.DeliverEventsResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &eventsv1.DeliverEventsResponse{}
	for _, ev := range events {
		id := ev.GetId()
		if s.omit[id] {
			continue
		}
		st := eventsv1.DeliveryStatus_DELIVERY_STATUS_ACCEPTED
		if s.deliveries[id] > 0 {
			st = eventsv1.DeliveryStatus_DELIVERY_STATUS_DUPLICATE
		} else {
			s.events = append(s.events, ev)
		}
		s.deliveries[id]++
		resp.Results = append(resp.Results, &eventsv1.DeliveryResult{EventId: id, Status: st})
	}
	return resp
}

// Events returns the accepted events, each once, in arrival order.
func (s *Sink) Events() []*eventsv1.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*eventsv1.Event(nil), s.events...)
}

// Count is the number of distinct events accepted.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// Deliveries returns how many answered calls carried each event id.
func (s *Sink) Deliveries() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.deliveries))
	for k, v := range s.deliveries {
		out[k] = v
	}
	return out
}

// Overlaps is how many times an event arrived while another call carrying
// it was still being handled.
func (s *Sink) Overlaps() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overlaps
}

// MaxConcurrent is the most calls the sink handled at once.
func (s *Sink) MaxConcurrent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxCalls
}

// Batches returns the number of events of every call that reached the
// handler, failed or not, in arrival order.
func (s *Sink) Batches() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.batches...)
}

// Subjects returns the calls per token subject.
func (s *Sink) Subjects() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.subjects))
	for k, v := range s.subjects {
		out[k] = v
	}
	return out
}

// Replicas returns the calls per sender replica (the Shop-Relay-Replica
// header; "" for calls without it).
func (s *Sink) Replicas() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.replicas))
	for k, v := range s.replicas {
		out[k] = v
	}
	return out
}

// WaitFor waits until at least n distinct events were accepted, failing the
// test after timeout.
func (s *Sink) WaitFor(n int, timeout time.Duration) {
	s.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for s.Count() < n {
		select {
		case <-s.arrived:
		case <-time.After(50 * time.Millisecond):
		case <-deadline.C:
			s.t.Fatalf("sinktest: %d events accepted after %s, want %d", s.Count(), timeout, n)
		}
	}
}

var _ eventsv1connect.EventSinkServiceHandler = (*Sink)(nil)
