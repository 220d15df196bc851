// Package traceparent carries the W3C Trace Context "traceparent" of an
// incoming request (https://www.w3.org/TR/trace-context/) through a context,
// so that what the request causes, such as outbox events, can name the trace
// it belongs to. It validates the header and nothing more: spans, sampling
// and exporters come with OpenTelemetry.
package traceparent

import (
	"context"
	"net/http"
	"strings"
)

// Header is the HTTP header (and gRPC metadata key) that carries the value.
const Header = "traceparent"

// Parse validates a traceparent header value and returns it in its version
// 00 form "00-<trace-id>-<parent-id>-<flags>". It reports false for a value
// that does not follow the W3C format: a version other than two lowercase
// hex digits, version ff, a trace id (32 hex digits) or parent id (16 hex
// digits) of all zeros or with upper-case digits, or, for version 00, any
// trailing data. Values of a higher version are accepted with their first
// four fields, as the specification asks of version 00 parsers.
func Parse(v string) (string, bool) {
	v = strings.Trim(v, " \t")
	const size = 55 // 2 + 1 + 32 + 1 + 16 + 1 + 2
	if len(v) < size {
		return "", false
	}
	version := v[0:2]
	if !isHex(version) || version == "ff" {
		return "", false
	}
	if version == "00" && len(v) != size {
		return "", false
	}
	if len(v) > size && v[size] != '-' {
		return "", false
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return "", false
	}
	traceID, parentID, flags := v[3:35], v[36:52], v[53:55]
	if !isHex(traceID) || !isHex(parentID) || !isHex(flags) || allZero(traceID) || allZero(parentID) {
		return "", false
	}
	return "00-" + traceID + "-" + parentID + "-" + flags, true
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	return strings.Trim(s, "0") == ""
}

type key struct{}

// WithValue returns ctx carrying the traceparent v, which must come from
// Parse.
func WithValue(ctx context.Context, v string) context.Context {
	return context.WithValue(ctx, key{}, v)
}

// FromContext returns the request's validated traceparent, or "" when the
// request carried none or an invalid one.
func FromContext(ctx context.Context) string {
	v, _ := ctx.Value(key{}).(string)
	return v
}

// Middleware puts the request's traceparent into its context when the
// request carries exactly one valid traceparent header; an absent, repeated
// or invalid header is ignored (a trace is never a reason to refuse a
// request), as the specification asks.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if vs := r.Header.Values(Header); len(vs) == 1 {
			if v, ok := Parse(vs[0]); ok {
				r = r.WithContext(WithValue(r.Context(), v))
			}
		}
		next.ServeHTTP(w, r)
	})
}
