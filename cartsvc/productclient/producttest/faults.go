package producttest

import (
	"context"
	"errors"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
)

// errFailure is the message of the errors FailWith injects.
var errFailure = errors.New("producttest: told to fail")

// failure is how BatchGetProducts misbehaves: at most one of its fields
// is set.
type failure struct {
	drop  bool          // close the connection without an answer
	code  connect.Code  // answer with a Connect error of this code
	delay time.Duration // answer only after this long (or when the caller gives up)
}

// wait waits out f's delay; it returns an error if ctx ends first.
func (f failure) wait(ctx context.Context) error {
	if f.delay <= 0 {
		return nil
	}
	select {
	case <-time.After(f.delay):
		return nil
	case <-ctx.Done():
		return connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
	}
}

func (s *Service) currentFailure() failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure
}

func (s *Service) setFailure(f failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failure = f
}

// Drop makes every BatchGetProducts call end with its connection closed
// and no answer, as a crashed productsvc would, until Recover.
func (s *Service) Drop() { s.setFailure(failure{drop: true}) }

// FailWith makes every BatchGetProducts call fail with code until
// Recover (FailWith(0) recovers too).
func (s *Service) FailWith(code connect.Code) { s.setFailure(failure{code: code}) }

// Slow makes every BatchGetProducts call answer only after d (or fail when
// its caller gives up first), until Recover.
func (s *Service) Slow(d time.Duration) { s.setFailure(failure{delay: d}) }

// Recover ends Drop, FailWith and Slow: calls are answered again.
func (s *Service) Recover() { s.setFailure(failure{}) }

// Hold makes BatchGetProducts answers, made from the catalog as it was
// when each call arrived, wait until Release (or their caller gives up),
// so a test can change the catalog while an answer is on its way, or make
// concurrent lookups meet one fetch in flight.
func (s *Service) Hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate == nil {
		s.gate = make(chan struct{})
	}
}

// Release sends the held answers and ends Hold.
func (s *Service) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
}

// observe counts BatchGetProducts requests and records their trace before
// h sees them, and drops their connection when told to.
func (s *Service) observe(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == productv1connect.ProductServiceBatchGetProductsProcedure {
			s.calls.Add(1)
			trace := r.Header.Get("traceparent")
			s.trace.Store(&trace)
			if s.currentFailure().drop {
				if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
					conn.Close()
					return
				}
				panic(http.ErrAbortHandler) // HTTP/2: reset the stream
			}
		}
		h.ServeHTTP(w, r)
	})
}
