// Package telemetry is what lets operators see inside a shop service:
// OpenTelemetry tracing (W3C trace context, exporter none, stdout or OTLP
// over HTTP), metrics in one Prometheus registry (otel instruments and
// client_golang collectors alike), one structured log line per RPC, and the
// admin listener that serves /metrics and net/http/pprof away from the API
// port.
//
// A service builds one [Telemetry] at start-up (internal/boot does) and
// hands its options to every Connect handler ([Telemetry.HandlerOptions])
// and client ([Telemetry.ClientOptions]). Nothing here touches otel's
// global providers, so several services can run in one process (the dev
// stack, tests) with their own telemetry.
package telemetry

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Trace exporters [Config.TraceExporter] accepts.
const (
	// ExporterNone records no span. Trace ids are still made and passed on
	// (W3C traceparent to other services and into the outbox), so log
	// lines of one request carry one trace id across services.
	ExporterNone = "none"
	// ExporterStdout writes finished spans as JSON to Config.TraceOut
	// (default standard output): for development.
	ExporterStdout = "stdout"
	// ExporterOTLPHTTP sends spans with OTLP over HTTP to the endpoint the
	// standard OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT)
	// environment variable names, default http://localhost:4318.
	ExporterOTLPHTTP = "otlp-http"
)

// Config configures a service's telemetry. The zero Config is usable:
// no admin listener, no spans recorded, JSON logs at info level.
type Config struct {
	// AdminAddr is where the admin listener serves /metrics and
	// /debug/pprof/; empty serves none. Keep it on loopback or a private
	// network: pprof shows the process's insides.
	AdminAddr string
	// TraceExporter is ExporterNone (default), ExporterStdout or
	// ExporterOTLPHTTP.
	TraceExporter string
	// TraceSampleRatio is the share of new traces recorded when an exporter
	// is set (0 < r ≤ 1, default 1); a request that arrives with a W3C
	// traceparent follows its caller's sampling decision.
	TraceSampleRatio float64
	// TraceOut receives ExporterStdout's spans; default os.Stdout.
	TraceOut io.Writer
	// LogFormat is "json" (default: production) or "text" (development).
	LogFormat string
	// LogLevel is debug, info (default), warn or error.
	LogLevel string
}

// RegisterFlags defines the telemetry flags on fs; adminAddr is the
// default admin listener address.
func (c *Config) RegisterFlags(fs *flag.FlagSet, adminAddr string) {
	fs.StringVar(&c.AdminAddr, "admin-addr", adminAddr, "admin listener for GET /metrics (Prometheus) and /debug/pprof/; keep it private (empty: none)")
	fs.StringVar(&c.TraceExporter, "trace-exporter", ExporterNone, "where spans go: none, stdout, or otlp-http (endpoint from OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4318)")
	fs.Float64Var(&c.TraceSampleRatio, "trace-sample-ratio", 1, "share of new traces recorded when --trace-exporter is set (requests with a traceparent follow their caller)")
	fs.StringVar(&c.LogFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// Validate reports the first invalid field as an error naming its flag.
func (c Config) Validate() error {
	switch c.TraceExporter {
	case "", ExporterNone, ExporterStdout, ExporterOTLPHTTP:
	default:
		return fmt.Errorf("--trace-exporter: %q is not none, stdout or otlp-http", c.TraceExporter)
	}
	if c.TraceSampleRatio < 0 || c.TraceSampleRatio > 1 {
		return fmt.Errorf("--trace-sample-ratio: %g is not within 0..1", c.TraceSampleRatio)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	switch c.LogFormat {
	case "", "json", "text":
	default:
		return fmt.Errorf("--log-format: %q is not json or text", c.LogFormat)
	}
	return nil
}

// Telemetry is one service's tracing, metrics and logging.
type Telemetry struct {
	// Logger writes the service's logs in the configured format; records
	// logged with a context inside a span carry its trace_id.
	Logger *slog.Logger
	// Registry is the one Prometheus registry the admin listener serves:
	// Go and process collectors, every otel instrument of MeterProvider,
	// and whatever the service registers itself.
	Registry *prometheus.Registry
	// TracerProvider makes the service's spans.
	TracerProvider trace.TracerProvider
	// MeterProvider makes otel instruments, exported through Registry.
	MeterProvider metric.MeterProvider
	// Propagator carries W3C trace context in and out of requests.
	Propagator propagation.TextMapPropagator

	rpc       *otelconnect.Interceptor
	recording bool // spans are exported
	shutdown  []func(context.Context) error
	admin     *Admin
}

// New builds the telemetry of the service named service (the otel
// service.name, e.g. "productsvc"), logging to logOut. It starts the admin
// listener when c.AdminAddr is set; [Telemetry.Shutdown] stops it and
// flushes spans.
func New(c Config, service string, logOut io.Writer) (*Telemetry, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	log, _ := NewLogger(logOut, c.LogFormat, c.LogLevel)
	t := &Telemetry{Logger: log, Registry: prometheus.NewRegistry(), Propagator: propagation.TraceContext{}}
	t.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	res := resource.NewSchemaless(attribute.String("service.name", service))

	exporter, err := otelprom.New(otelprom.WithRegisterer(t.Registry), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter), sdkmetric.WithResource(res))
	t.MeterProvider = mp
	t.shutdown = append(t.shutdown, mp.Shutdown)

	tp, err := newTracerProvider(c, res)
	if err != nil {
		return nil, err
	}
	t.TracerProvider = tp
	t.recording = c.TraceExporter != "" && c.TraceExporter != ExporterNone
	t.shutdown = append(t.shutdown, tp.Shutdown)

	if t.rpc, err = t.newInterceptor(); err != nil {
		return nil, err
	}

	if c.AdminAddr != "" {
		if t.admin, err = ServeAdmin(c.AdminAddr, t.Registry, log); err != nil {
			_ = t.Shutdown(context.Background())
			return nil, err
		}
	}
	return t, nil
}

// newInterceptor is the otelconnect interceptor for t's providers.
func (t *Telemetry) newInterceptor() (*otelconnect.Interceptor, error) {
	i, err := otelconnect.NewInterceptor(
		otelconnect.WithTracerProvider(t.TracerProvider),
		otelconnect.WithMeterProvider(t.MeterProvider),
		otelconnect.WithPropagator(t.Propagator),
		// Shop services call each other: a caller's traceparent makes the
		// server span its child, so one trace runs from the browser's call
		// through the outbox to the cart.
		otelconnect.WithTrustRemote(),
		// One series per procedure and code, whatever the protocol.
		otelconnect.WithRPCSystem(otelconnect.ConnectRPCSystem),
		otelconnect.WithDurationHistogramOptions(metric.WithExplicitBucketBoundaries(DurationBuckets...)),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: otelconnect: %w", err)
	}
	return i, nil
}

// DurationBuckets are the bucket bounds, in seconds, of the RPC duration
// histograms: fine below 100 ms where the shop's calls live.
var DurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func newTracerProvider(c Config, res *resource.Resource) (*sdktrace.TracerProvider, error) {
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	ratio := c.TraceSampleRatio
	if ratio == 0 {
		ratio = 1
	}
	switch c.TraceExporter {
	case "", ExporterNone:
		// Spans get ids (so they propagate and reach log lines) but are
		// never recorded: the cost of a disabled tracer.
		opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
	case ExporterStdout:
		out := c.TraceOut
		if out == nil {
			out = os.Stdout
		}
		exp, err := stdouttrace.New(stdouttrace.WithWriter(out))
		if err != nil {
			return nil, fmt.Errorf("telemetry: stdout exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithSyncer(exp),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	case ExporterOTLPHTTP:
		exp, err := otlptracehttp.New(context.Background())
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// ForTest returns telemetry for tests: spans recorded (all of them) into
// spans when it is not nil, logs to log, no admin listener.
func ForTest(service string, spans sdktrace.SpanExporter, log *slog.Logger) *Telemetry {
	t, err := New(Config{}, service, io.Discard)
	if err != nil {
		panic(err) // the zero Config is valid
	}
	if log != nil {
		t.Logger = log
	}
	if spans != nil {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))))
		t.TracerProvider, t.recording = tp, true
		t.shutdown = append(t.shutdown, tp.Shutdown)
		t.rpc, _ = t.newInterceptor()
	}
	return t
}

// HandlerOptions returns the options that trace, measure and log every RPC
// of a Connect handler. Put them BEFORE the server's own options
// (server.HandlerOptions) so their interceptors run outermost and see the
// codes clients see.
func (t *Telemetry) HandlerOptions() []connect.HandlerOption {
	return []connect.HandlerOption{connect.WithInterceptors(t.Interceptors()...)}
}

// Interceptors are the handler interceptors of HandlerOptions, outermost
// first: otelconnect's, then the request log.
func (t *Telemetry) Interceptors() []connect.Interceptor {
	return []connect.Interceptor{t.rpc, &requestLog{log: t.Logger}}
}

// ClientOptions returns the options that trace and measure every call of a
// Connect client and pass the W3C traceparent on.
func (t *Telemetry) ClientOptions() []connect.ClientOption {
	return []connect.ClientOption{connect.WithInterceptors(t.rpc)}
}

// Tracer returns the tracer of the named instrumentation (a package path).
func (t *Telemetry) Tracer(name string) trace.Tracer { return t.TracerProvider.Tracer(name) }

// AdminAddr returns the admin listener's address, or "" without one.
func (t *Telemetry) AdminAddr() string {
	if t.admin == nil {
		return ""
	}
	return t.admin.Addr()
}

// Shutdown stops the admin listener and flushes what the exporters hold,
// within ctx.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.admin != nil {
		errs = append(errs, t.admin.Close(ctx))
	}
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// shutdownTimeout bounds Close.
const shutdownTimeout = 5 * time.Second

// Close is Shutdown with a 5 s limit, for defer.
func (t *Telemetry) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	_ = t.Shutdown(ctx)
}
