package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/decoupledshop/shop/internal/server"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestMessagesUpToReadMaxBytesAreAccepted(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	b := setup(t, server.Config{ReadMaxBytes: limit}, nil)
	for _, tr := range binaryTransports() {
		for _, gzipped := range []bool{false, true} {
			name := tr.name
			var extra []connect.ClientOption
			if gzipped {
				name += "/gzip"
				extra = append(extra, connect.WithSendGzip(), connect.WithCompressMinBytes(0))
			}
			t.Run(name, func(t *testing.T) {
				client := newTestClient[wrapperspb.BytesValue, wrapperspb.BytesValue](b, tr, echoProcedure, extra...)
				if _, err := client.CallUnary(context.Background(), connect.NewRequest(bytesOfSize(t, limit))); err != nil {
					t.Errorf("message of exactly ReadMaxBytes (%d): got %v, want success", limit, err)
				}
				_, err := client.CallUnary(context.Background(), connect.NewRequest(bytesOfSize(t, limit+1)))
				if got := connect.CodeOf(err); got != connect.CodeResourceExhausted {
					t.Errorf("message of ReadMaxBytes+1: got %v (code %v), want ResourceExhausted", err, got)
				}
			})
		}
	}
}

func TestGzipBombIsRejected(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	b := setup(t, server.Config{ReadMaxBytes: limit}, nil)
	bomb := gzipBomb(t, 16<<20) // inflates to 16 MiB
	if len(bomb) >= limit {
		t.Fatalf("premise: the bomb is %d bytes, want fewer than ReadMaxBytes (%d)", len(bomb), limit)
	}
	for _, tc := range []struct {
		name   string
		client *http.Client
		header http.Header
		body   []byte
		tooBig func(res *http.Response, body []byte) bool
	}{
		{
			name:   "connect",
			client: b.http1,
			header: http.Header{"Content-Type": {"application/proto"}, "Content-Encoding": {"gzip"}},
			body:   bomb,
			tooBig: func(res *http.Response, body []byte) bool {
				return res.StatusCode == http.StatusTooManyRequests && bytes.Contains(body, []byte(`"code":"resource_exhausted"`))
			},
		},
		{
			name:   "grpc",
			client: b.h2c,
			header: http.Header{"Content-Type": {"application/grpc"}, "Grpc-Encoding": {"gzip"}, "Te": {"trailers"}},
			body:   envelope(bomb),
			tooBig: func(res *http.Response, _ []byte) bool {
				return res.Header.Get("Grpc-Status") == "8" || res.Trailer.Get("Grpc-Status") == "8"
			},
		},
		{
			name:   "grpcweb",
			client: b.http1,
			header: http.Header{"Content-Type": {"application/grpc-web+proto"}, "Grpc-Encoding": {"gzip"}},
			body:   envelope(bomb),
			tooBig: func(res *http.Response, body []byte) bool {
				return res.Header.Get("Grpc-Status") == "8" || bytes.Contains(body, []byte("grpc-status:8"))
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := postRaw(t, tc.client, b.baseURL+echoProcedure, tc.header, tc.body)
			if !tc.tooBig(res, body) {
				t.Errorf("gzip bomb: got %d %v %q, want ResourceExhausted", res.StatusCode, res.Header, body)
			}
		})
	}
}

// postRaw posts body with exactly header and returns the response and its
// body, read in full.
func postRaw(t *testing.T, client *http.Client, url string, header http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return res, got
}

// gzipBomb returns a small gzip stream (concatenated members) that inflates
// to size zero bytes.
func gzipBomb(t *testing.T, size int) []byte {
	t.Helper()
	const chunk = 64 << 10
	var member bytes.Buffer
	zw, err := gzip.NewWriterLevel(&member, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(make([]byte, chunk)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.Repeat(member.Bytes(), size/chunk)
}

// envelope frames a compressed message for gRPC and gRPC-Web.
func envelope(compressed []byte) []byte {
	prefix := []byte{1, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(prefix[1:], uint32(len(compressed)))
	return append(prefix, compressed...)
}

func TestRawBodiesAreCappedAboveReadMaxBytes(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	const bodyLimit = limit + 64<<10
	b := setup(t, server.Config{ReadMaxBytes: limit}, nil)
	for _, tc := range []struct {
		size int
		want int
	}{
		{bodyLimit, http.StatusOK},
		{bodyLimit + 1, http.StatusRequestEntityTooLarge},
	} {
		res, err := b.http1.Post(b.baseURL+rawPath, "application/octet-stream", bytes.NewReader(make([]byte, tc.size)))
		if err != nil {
			t.Fatalf("POST %d bytes: %v", tc.size, err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("POST %d bytes to a plain handler: status %d, want %d", tc.size, res.StatusCode, tc.want)
		}
	}
}

func TestHandlerDeadlinesAreCapped(t *testing.T) {
	t.Parallel()
	const maxDeadline = 5 * time.Second
	b := setup(t, server.Config{MaxDeadline: maxDeadline}, nil)
	for _, tr := range binaryTransports() {
		for _, tc := range []struct {
			name    string
			timeout time.Duration // 0: the client sends none
			want    time.Duration // upper bound on what the handler sees
		}{
			{"client asks 1h", time.Hour, maxDeadline},
			{"client sends none", 0, maxDeadline},
			{"client asks less", 2 * time.Second, 2 * time.Second},
		} {
			t.Run(tr.name+"/"+tc.name, func(t *testing.T) {
				ctx := context.Background()
				if tc.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.timeout)
					defer cancel()
				}
				client := newTestClient[emptypb.Empty, wrapperspb.Int64Value](b, tr, deadlineProcedure)
				res, err := client.CallUnary(ctx, connect.NewRequest(&emptypb.Empty{}))
				if err != nil {
					t.Fatalf("Deadline: %v", err)
				}
				remaining := time.Duration(res.Msg.GetValue())
				if remaining <= 0 || remaining > tc.want {
					t.Errorf("handler's deadline is %v away, want within (0, %v]", remaining, tc.want)
				}
			})
		}
	}
}

func TestSmallResponsesAreNotCompressed(t *testing.T) {
	t.Parallel()
	b := setup(t, server.Config{}, nil)
	for _, tc := range []struct {
		size     int
		encoding string
	}{
		{10, ""},
		{2000, ""},     // a cart-sized response: compressing costs more CPU than it saves
		{8192, "gzip"}, // proves the check below can see compression
	} {
		body := strconv.Quote(strings.Repeat("a", tc.size))
		req, err := http.NewRequest(http.MethodPost, b.baseURL+echoTextProcedure, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept-Encoding", "gzip")
		res, err := b.http1.Do(req)
		if err != nil {
			t.Fatalf("EchoText(%d bytes): %v", tc.size, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("EchoText(%d bytes): status %d", tc.size, res.StatusCode)
		}
		if got := res.Header.Get("Content-Encoding"); got != tc.encoding {
			t.Errorf("EchoText(%d bytes) with Accept-Encoding gzip: Content-Encoding %q, want %q", tc.size, got, tc.encoding)
		}
	}
}
