// Package server is the one hardened HTTP server both shop services run:
// Connect, gRPC and gRPC-Web on one cleartext port (HTTP/1.1 and h2c), with
// message and body limits, capped deadlines, one error mapping, server
// timeouts, gRPC health and reflection, /healthz, /readyz, and a graceful
// drain on shutdown. Metrics are served elsewhere: on the admin listener
// (internal/telemetry), never on the API port.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus"
)

// Server serves the handlers mounted on it plus the operational endpoints:
//
//	GET /healthz   liveness: 200 while the process serves
//	GET /readyz    readiness: 200 only while Config.Ready passes and the server is not draining, else 503
//	grpc.health.v1.Health/Check   SERVING under the same condition as /readyz (Watch is unimplemented)
//	grpc.reflection.v1 and v1alpha  listing the names given to RegisterServiceNames
//
// A Server serves once: build it with [New], mount handlers, then call
// [Server.Run] or [Server.Serve].
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	registry *prometheus.Registry

	mu       sync.Mutex
	services []string

	draining atomic.Bool
	started  atomic.Bool
	addr     atomic.Pointer[net.Addr]

	// drainWait returns a channel that fires when the drain delay is over;
	// tests replace it to control the drain step by step.
	drainWait func(time.Duration) <-chan time.Time
}

// New returns a Server configured by cfg (zero fields take their defaults)
// with the operational endpoints already mounted.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:       cfg,
		mux:       http.NewServeMux(),
		registry:  cfg.Registry,
		drainWait: time.After,
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	opts := HandlerOptions(cfg)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	s.mux.HandleFunc("GET /readyz", s.serveReadyz)
	s.mux.Handle(grpchealth.NewHandler(healthChecker{s}, opts...))
	reflector := grpcreflect.NewReflector(grpcreflect.NamerFunc(s.serviceNames))
	s.mux.Handle(grpcreflect.NewHandlerV1(reflector, opts...))
	s.mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, opts...))
	return s
}

// Handle mounts h on pattern (http.ServeMux syntax), typically the path and
// handler from a generated NewXServiceHandler built with [HandlerOptions],
// possibly wrapped in authentication middleware. Call it before serving.
// Like http.ServeMux.Handle, it panics on a conflicting pattern.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

// RegisterServiceNames adds fully-qualified protobuf service names (for
// example "shop.product.v1.ProductService") to those listed by server
// reflection and known to the gRPC health service.
func (s *Server) RegisterServiceNames(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range names {
		if !slices.Contains(s.services, name) {
			s.services = append(s.services, name)
		}
	}
}

func (s *Server) serviceNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.services)
}

// Registry returns Config.Registry (a fresh one if it was nil); register
// service metrics on it. The admin listener serves it, not this server.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Addr returns the address the server listens on, or nil before it listens.
func (s *Server) Addr() net.Addr {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// Run listens on Config.Addr and serves as [Server.Serve] does.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is cancelled, then drains: readiness turns off
// at once (/readyz 503, gRPC health NOT_SERVING) while requests are still
// served for Config.DrainDelay, each HTTP/1.1 answer closing its connection
// (Connection: close) so that clients reconnect elsewhere; then the listener closes and in-flight
// requests get up to Config.ShutdownTimeout to finish. Cancelling ctx never
// cancels in-flight requests. Serve closes ln.
//
// Serve returns nil after a clean shutdown, an error if serving fails or
// in-flight requests outlive ShutdownTimeout (they are then cut off, and the
// error wraps context.DeadlineExceeded), and an error if the Server was
// already started.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.started.CompareAndSwap(false, true) {
		ln.Close()
		return errors.New("server: already started")
	}
	addr := ln.Addr()
	s.addr.Store(&addr)

	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	hs := &http.Server{
		Handler:           s.closeWhileDraining(http.MaxBytesHandler(withCORS(s.cfg.CORSAllowedOrigins, s.mux), int64(s.cfg.ReadMaxBytes)+bodySlack)),
		Protocols:         protocols,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
		// Requests keep ctx's values but not its cancellation: shutdown is
		// the drain below, not an abrupt cancel.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	s.cfg.Logger.InfoContext(ctx, "server listening", "addr", addr.String())

	select {
	case err := <-served:
		hs.Close()
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}

	s.draining.Store(true)
	s.cfg.Logger.Info("server draining", "drain_delay", s.cfg.DrainDelay)
	select {
	case <-s.drainWait(s.cfg.DrainDelay):
	case err := <-served:
		hs.Close()
		return fmt.Errorf("server: %w", err)
	}

	s.cfg.Logger.Info("server shutting down", "timeout", s.cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		hs.Close()
		return fmt.Errorf("server: shutdown: in-flight requests cut off: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("server: %w", err)
	}
	s.cfg.Logger.Info("server stopped")
	return nil
}

// closeWhileDraining answers each HTTP/1.1 request that arrives while the
// server drains with Connection: close, so that a client behind a
// connection-level balancer (a Kubernetes Service) reconnects, to a ready
// replica, instead of reusing a connection the shutdown will close. Idle
// connections stay open until then: closing them at once (as
// http.Server.SetKeepAlivesEnabled(false) does) races with clients that
// picked one for a request just before they learnt of the drain. HTTP/2
// clients get GOAWAY at shutdown, which tells them which requests were not
// processed.
func (s *Server) closeWhileDraining(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 && s.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// ready reports whether the server should receive traffic. The returned error
// is for logs only.
func (s *Server) ready(ctx context.Context) error {
	if s.draining.Load() {
		return errDraining
	}
	if s.cfg.Ready == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, readinessTimeout)
	defer cancel()
	if err := s.cfg.Ready(ctx); err != nil {
		return fmt.Errorf("readiness check: %w", err)
	}
	return nil
}

var errDraining = errors.New("draining")

func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request) {
	switch err := s.ready(r.Context()); {
	case err == nil:
		writeText(w, http.StatusOK, "ok")
	case errors.Is(err, errDraining):
		writeText(w, http.StatusServiceUnavailable, "draining")
	default:
		s.cfg.Logger.WarnContext(r.Context(), "not ready", "error", err)
		writeText(w, http.StatusServiceUnavailable, "not ready")
	}
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body + "\n"))
}

// healthChecker answers grpc.health.v1 checks with the readiness of the
// server, for the whole server ("") and each registered service. It does not
// implement grpchealth.Watcher: Watch streams would hold connections open
// through shutdown.
type healthChecker struct{ s *Server }

func (c healthChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if req.Service != "" && !slices.Contains(c.s.serviceNames(), req.Service) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %s", req.Service))
	}
	if err := c.s.ready(ctx); err != nil {
		if !errors.Is(err, errDraining) {
			c.s.cfg.Logger.WarnContext(ctx, "not ready", "error", err)
		}
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}
