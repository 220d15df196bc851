package server

import (
	"compress/gzip"
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Default values that [Config] fields take when left zero.
const (
	DefaultAddr              = ":8080"
	DefaultReadMaxBytes      = 1 << 20 // 1 MiB per message
	DefaultMaxDeadline       = 30 * time.Second
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultDrainDelay        = 5 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second

	// bodySlack is how far a raw request body may exceed ReadMaxBytes before
	// net/http cuts it off: room for envelope prefixes and protocol framing.
	bodySlack = 64 << 10
	// writeSlack is added to ReadTimeout+MaxDeadline for the default
	// WriteTimeout, so a handler that uses its whole deadline can still send
	// its (error) response.
	writeSlack = 5 * time.Second
	// readinessTimeout bounds one run of Config.Ready.
	readinessTimeout = time.Second
	// corsMaxAge is how long browsers may cache a preflight answer.
	corsMaxAge = 2 * time.Hour
	// compressMinBytes: smaller messages are never compressed. Measured
	// (BenchmarkCompression): gzip at any level on a ~2 KB response costs
	// client and server together over a third more CPU per call than
	// sending it as is, to save about 1.5 KB.
	compressMinBytes = 4096
	// gzipLevel is the level responses are compressed at, for clients that
	// ask for gzip: BestSpeed compresses a pooled writer about twice as fast
	// as the default level (BenchmarkGzipResponse), whose Reset clears large
	// hash tables, for about 10% larger output.
	gzipLevel = gzip.BestSpeed
	// clientReadMaxBytes bounds responses read by Connect clients.
	clientReadMaxBytes = 4 << 20
)

// Config configures a [Server] and the handler options from [HandlerOptions].
// A zero field takes the matching Default value; the zero Config is usable.
type Config struct {
	// Addr is the TCP address Run listens on. Default ":8080".
	Addr string

	// ReadMaxBytes caps the size of one request message, both as received
	// and after decompression; larger messages fail with ResourceExhausted.
	// The whole raw request body is capped at ReadMaxBytes plus 64 KiB.
	// Default 1 MiB.
	ReadMaxBytes int

	// MaxDeadline caps the deadline of every RPC handler's context: a client
	// asking for more (or for none at all) gets MaxDeadline. Default 30s.
	MaxDeadline time.Duration

	// ReadHeaderTimeout bounds reading request headers. Default 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included. Default 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of the request headers to the
	// end of the response (per stream under HTTP/2). Streams are cut at this
	// point, so no long-lived streaming RPC is served. Default
	// ReadTimeout + MaxDeadline + 5s.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Default 120s.
	IdleTimeout time.Duration

	// DrainDelay is how long the server keeps serving with readiness reported
	// off (/readyz 503, gRPC health NOT_SERVING) before it stops accepting
	// connections, so load balancers stop routing to it first. Make it longer
	// than the load balancer's readiness probe period times its failure
	// threshold. Default 5s; a negative value means no delay.
	DrainDelay time.Duration
	// ShutdownTimeout bounds the wait for in-flight requests once shutdown
	// has begun; what is still running then is cut off. Default 30s.
	ShutdownTimeout time.Duration

	// Logger receives server errors, unexpected RPC errors and panics.
	// Default slog.Default().
	Logger *slog.Logger

	// CORSAllowedOrigins lists the browser origins ("http://localhost:8080",
	// scheme://host[:port], compared case-insensitively) allowed to call the
	// server cross-origin with the Connect, gRPC-Web and plain HTTP GET
	// protocols, sending an Authorization header; no credentials (cookies)
	// are allowed. The whole server answers them, before any handler or
	// middleware, so preflight requests never reach authentication. Empty
	// means no CORS headers at all: browsers then refuse cross-origin calls.
	// "*" is not special: list each origin.
	CORSAllowedOrigins []string

	// Ready reports whether the process can do useful work (for example a
	// database ping). It runs for each /readyz request and gRPC health check,
	// with a 1s timeout; nil means always ready. Its error text is logged,
	// never sent to the caller.
	Ready func(ctx context.Context) error

	// Registry is where the service registers its metrics (see
	// [Server.Registry]); the admin listener serves it. Default: a new,
	// empty registry.
	Registry *prometheus.Registry
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.ReadMaxBytes <= 0 {
		c.ReadMaxBytes = DefaultReadMaxBytes
	}
	if c.MaxDeadline <= 0 {
		c.MaxDeadline = DefaultMaxDeadline
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = c.ReadTimeout + c.MaxDeadline + writeSlack
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	switch {
	case c.DrainDelay == 0:
		c.DrainDelay = DefaultDrainDelay
	case c.DrainDelay < 0:
		c.DrainDelay = 0
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
