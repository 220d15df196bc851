package traceparent_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/decoupledshop/shop/internal/traceparent"
)

const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{valid, valid, true},
		{" " + valid + "\t", valid, true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", valid, true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", valid, true},
		{"", "", false},
		{valid + "-", "", false}, // version 00 has no trailing data
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", "", false},    // trailing data must follow a dash
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", false},     // version ff is invalid
		{"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", false},     // version not hex
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "", false},     // upper case
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "", false},     // zero trace id
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "", false},     // zero parent id
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", "", false},      // short flags
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", false},     // separator
		{"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", "", false},     // field lengths
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz", "", false},     // flags not hex
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\x00", "", false}, // control byte
	} {
		got, ok := traceparent.Parse(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Parse(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMiddlewareCarriesOnlyOneValidHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		values []string
		want   string
	}{
		{"valid", []string{valid}, valid},
		{"absent", nil, ""},
		{"invalid", []string{"00-xyz"}, ""},
		{"repeated", []string{valid, valid}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			h := traceparent.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = traceparent.FromContext(r.Context())
			}))
			req := httptest.NewRequest(http.MethodPost, "/", nil)
			for _, v := range tc.values {
				req.Header.Add(traceparent.Header, v)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if got != tc.want {
				t.Fatalf("traceparent in the handler's context = %q, want %q", got, tc.want)
			}
		})
	}
}
