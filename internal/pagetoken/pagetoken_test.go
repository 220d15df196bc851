package pagetoken

import (
	"errors"
	"testing"
	"time"

	"github.com/decoupledshop/shop/internal/shoperr"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	c := Cursor{CreateTime: time.Date(2026, 11, 26, 1, 2, 3, 456789000, time.UTC), Key: "0b6f1c1e-5d0e-4e55-9b1f-1f3c6c2f9d11"}
	got, err := Decode(Encode(c, "category=a"), "category=a")
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !got.CreateTime.Equal(c.CreateTime) || got.Key != c.Key {
		t.Fatalf("round trip = %+v, want %+v", got, c)
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	tok := Encode(Cursor{CreateTime: time.Now(), Key: "k"}, "q=shoes")
	for name, c := range map[string]struct{ token, filters string }{
		"other filters": {tok, "q=boots"},
		"not base64":    {"%%%", "q=shoes"},
		"not json":      {"bm90IGpzb24", "q=shoes"},
		"empty key":     {Encode(Cursor{CreateTime: time.Now()}, "q=shoes"), "q=shoes"},
	} {
		_, err := Decode(c.token, c.filters)
		var se *shoperr.Error
		if !errors.As(err, &se) || se.Code != shoperr.CodeInvalid || se.Field != "page_token" {
			t.Errorf("%s: Decode error = %v, want Invalid on page_token", name, err)
		}
	}
	if c, err := Decode("", "anything"); err != nil || c != First {
		t.Errorf("empty token = %+v, %v; want First", c, err)
	}
}

func TestSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[int32]int32{0: 50, 1: 1, 100: 100, 101: 100, 1 << 30: 100} {
		if got, err := Size(in); err != nil || got != want {
			t.Errorf("Size(%d) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := Size(-1); err == nil {
		t.Error("Size(-1) accepted")
	}
}
