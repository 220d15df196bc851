package server

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"time"

	"connectrpc.com/connect"
)

// HandlerOptions returns the options every Connect handler of the shop is
// built with (cfg's zero fields take their defaults):
//   - request messages are limited to cfg.ReadMaxBytes, both on the wire and
//     after gzip decompression, which stops as soon as the limit is passed
//     (ResourceExhausted);
//   - responses are gzip-compressed (at BestSpeed) for clients that ask, but
//     only from 4 KiB on;
//   - every handler context, unary or streaming, has a deadline at most
//     cfg.MaxDeadline away, whatever the client asked for (a shorter client
//     deadline is kept);
//   - every error goes through [ConnectError]; unexpected ones are logged to
//     cfg.Logger with the procedure, and the client only sees "internal error";
//     database outages are logged as warnings with their cause, and the client
//     sees Unavailable, as for a DeadlineExceeded while the request's own
//     (capped) deadline has not passed: a dependency's timeout;
//   - a panic in a handler is logged with its stack and answered as Internal.
//
// Callers may append options; interceptors they add run inside these.
func HandlerOptions(cfg Config) []connect.HandlerOption {
	cfg = cfg.withDefaults()
	return []connect.HandlerOption{
		connect.WithReadMaxBytes(cfg.ReadMaxBytes),
		connect.WithCompressMinBytes(compressMinBytes),
		connect.WithCompression("gzip", boundedGzip(cfg.ReadMaxBytes), gzipWriters(gzipLevel)),
		// deadlineCap outermost, so errorMapper sees the capped context.
		connect.WithInterceptors(deadlineCap(cfg.MaxDeadline), &errorMapper{log: cfg.Logger}),
		connect.WithRecover(recoverPanic(cfg.Logger)),
	}
}

// ClientOptions returns the options for Connect clients calling another shop
// service: messages under 4 KiB are sent uncompressed and responses are
// limited to 4 MiB.
func ClientOptions() []connect.ClientOption {
	return []connect.ClientOption{
		connect.WithCompressMinBytes(compressMinBytes),
		connect.WithReadMaxBytes(clientReadMaxBytes),
	}
}

// deadlineCap gives every handler context a deadline at most max away.
type deadlineCap time.Duration

func (d deadlineCap) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		ctx, cancel := context.WithTimeout(ctx, time.Duration(d))
		defer cancel()
		return next(ctx, req)
	}
}

func (d deadlineCap) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (d deadlineCap) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, cancel := context.WithTimeout(ctx, time.Duration(d))
		defer cancel()
		return next(ctx, conn)
	}
}

// boundedGzip returns a gzip Decompressor constructor whose readers fail with
// ResourceExhausted as soon as they have produced more than max bytes.
// connect-go enforces the same limit, but once it is passed it decompresses
// the rest of the stream to report the full size, so a small gzip bomb would
// still cost seconds of CPU; these readers stop at once.
func boundedGzip(max int) func() connect.Decompressor {
	return func() connect.Decompressor { return &limitedGzipReader{max: int64(max)} }
}

type limitedGzipReader struct {
	zr  gzip.Reader
	max int64
	n   int64
}

func (r *limitedGzipReader) Read(p []byte) (int, error) {
	n, err := r.zr.Read(p)
	r.n += int64(n)
	if r.n > r.max {
		return n, connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("decompressed message is larger than configured max %d", r.max))
	}
	return n, err
}

func (r *limitedGzipReader) Reset(src io.Reader) error {
	r.n = 0
	return r.zr.Reset(src)
}

func (r *limitedGzipReader) Close() error { return r.zr.Close() }

// gzipWriters returns a gzip Compressor constructor at level; connect-go
// pools what it makes.
func gzipWriters(level int) func() connect.Compressor {
	return func() connect.Compressor {
		w, err := gzip.NewWriterLevel(io.Discard, level)
		if err != nil {
			panic(err) // only for an invalid level, a constant here
		}
		return w
	}
}
