package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"connectrpc.com/connect"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decompressLikeConnect reads src the way connect-go's handlers do: at most
// max+1 bytes into a buffer.
func decompressLikeConnect(t *testing.T, d connect.Decompressor, src io.Reader, max int) (*bytes.Buffer, error) {
	t.Helper()
	if err := d.Reset(src); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	var out bytes.Buffer
	_, err := out.ReadFrom(io.LimitReader(d, int64(max)+1))
	return &out, err
}

func TestBoundedGzipAcceptsExactlyMax(t *testing.T) {
	t.Parallel()
	const max = 64 << 10
	d := boundedGzip(max)()
	want := bytes.Repeat([]byte("0123456789abcdef"), max/16)
	out, err := decompressLikeConnect(t, d, bytes.NewReader(gzipped(t, want)), max)
	if err != nil {
		t.Fatalf("decompressing exactly max bytes: %v, want success", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("decompressed %d bytes, want the original %d", out.Len(), len(want))
	}
	// A pooled decompressor is reused: the count must start again.
	if _, err := decompressLikeConnect(t, d, bytes.NewReader(gzipped(t, want)), max); err != nil {
		t.Errorf("reusing the decompressor for exactly max bytes: %v, want success", err)
	}
}

func TestBoundedGzipStopsAtMaxWithoutInflatingTheRest(t *testing.T) {
	t.Parallel()
	const max = 64 << 10
	// 1024 gzip members of 64 KiB of zeros each: 64 MiB inflated.
	bomb := bytes.Repeat(gzipped(t, make([]byte, 64<<10)), 1024)
	src := &countingReader{r: bytes.NewReader(bomb)}

	out, err := decompressLikeConnect(t, boundedGzip(max)(), src, max)
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("decompressing a bomb: %v, want ResourceExhausted", err)
	}
	if out.Len() > max+1 {
		t.Errorf("produced %d bytes, want at most max+1 (%d)", out.Len(), max+1)
	}
	if src.n > len(bomb)/10 {
		t.Errorf("consumed %d of the bomb's %d compressed bytes, want to stop near the start", src.n, len(bomb))
	}
}
