package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// Admin is the admin listener: operators' endpoints kept off the API port.
//
//	GET /metrics        the registry in Prometheus text (or OpenMetrics) format
//	GET /debug/pprof/   net/http/pprof's index, profiles and traces
type Admin struct {
	srv *http.Server
	ln  net.Listener
}

// ServeAdmin listens on addr at once (so a busy port fails start-up) and
// serves the admin endpoints for reg in the background until Close.
func ServeAdmin(addr string, reg *prometheus.Registry, log *slog.Logger) (*Admin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--admin-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelError),
		Registry:          reg,
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	a := &Admin{ln: ln, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		// Profiles and traces stream for their ?seconds= (default 30 s).
		WriteTimeout: 5 * time.Minute,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
	go func() {
		if err := a.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", "error", err)
		}
	}()
	log.Info("admin listening", "addr", ln.Addr().String(), "endpoints", "/metrics /debug/pprof/")
	return a, nil
}

// Addr returns the address the admin listener listens on.
func (a *Admin) Addr() string { return a.ln.Addr().String() }

// Close stops the listener, letting requests in flight finish within ctx.
func (a *Admin) Close(ctx context.Context) error {
	if err := a.srv.Shutdown(ctx); err != nil {
		return a.srv.Close()
	}
	return nil
}

// Scrape renders what g holds in the Prometheus text format, as GET
// /metrics would serve it.
func Scrape(g prometheus.Gatherer) (string, error) {
	families, err := g.Gather()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// Sample returns the value of one sample of g, named as in the text format
// (`cartsvc_events_total{result="applied"}`), or "" when g has no such
// sample.
func Sample(g prometheus.Gatherer, sample string) string {
	text, err := Scrape(g)
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return v
		}
	}
	return ""
}
