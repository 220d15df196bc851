package pagetoken

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

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

func TestPage(t *testing.T) {
	t.Parallel()
	at := func(i int) Cursor { return Cursor{CreateTime: time.Unix(int64(100-i), 0), Key: string(rune('a' + i))} }
	rows := []int{0, 1, 2}
	page, next := Page(rows, 3, "f", at)
	if len(page) != 3 || next != "" {
		t.Fatalf("a full last page: %v, %q; want all rows and no token", page, next)
	}
	page, next = Page(rows, 2, "f", at)
	if len(page) != 2 || next == "" {
		t.Fatalf("one row more than the page: %v, %q; want 2 rows and a token", page, next)
	}
	c, err := Decode(next, "f")
	if err != nil || !c.CreateTime.Equal(at(1).CreateTime) || c.Key != at(1).Key {
		t.Fatalf("the token points at %+v, %v; want the page's last row %+v", c, err, at(1))
	}
}

func TestKeyUUID(t *testing.T) {
	t.Parallel()
	if id, err := First.KeyUUID(); err != nil || id != uuid.Nil {
		t.Fatalf("First.KeyUUID() = %v, %v; want Nil", id, err)
	}
	want := uuid.New()
	if id, err := (Cursor{Key: want.String()}).KeyUUID(); err != nil || id != want {
		t.Fatalf("KeyUUID = %v, %v; want %v", id, err, want)
	}
	var se *shoperr.Error
	if _, err := (Cursor{Key: "forged"}).KeyUUID(); !errors.As(err, &se) || se.Field != "page_token" {
		t.Fatalf("a forged key: %v, want Invalid naming page_token", err)
	}
}
