package pagetoken_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/decoupledshop/shop/internal/pagetoken"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// FuzzDecode: whatever a client sends as page_token, Decode either refuses
// it as invalid "page_token" input, or returns a cursor PostgreSQL can
// store and compare (a key of valid UTF-8 without NUL, a time within
// timestamptz's range) that survives another round trip.
func FuzzDecode(f *testing.F) {
	f.Add(pagetoken.Encode(pagetoken.Cursor{CreateTime: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), Key: "0193a5c2-0000-7c3e-9a1b-5d2e8f4c0000"}, "q=shoes"), "q=shoes")
	f.Add(pagetoken.Encode(pagetoken.First, ""), "")
	f.Fuzz(func(t *testing.T, token, filters string) {
		c, err := pagetoken.Decode(token, filters)
		if err != nil {
			if de, ok := err.(*shoperr.Error); !ok || de.Code != shoperr.CodeInvalid || de.Field != "page_token" {
				t.Fatalf("Decode(%q): %v, want an Invalid page_token error", token, err)
			}
			return
		}
		if token == "" {
			return
		}
		if !utf8.ValidString(c.Key) || strings.ContainsRune(c.Key, 0) || c.Key == "" {
			t.Fatalf("Decode(%q) gave key %q, which PostgreSQL cannot store", token, c.Key)
		}
		if c.CreateTime.Year() < 1 || c.CreateTime.After(pagetoken.First.CreateTime) {
			t.Fatalf("Decode(%q) gave time %v, outside what the lists store", token, c.CreateTime)
		}
		again, err := pagetoken.Decode(pagetoken.Encode(c, filters), filters)
		if err != nil || !again.CreateTime.Equal(c.CreateTime) || again.Key != c.Key {
			t.Fatalf("round trip of %+v: %+v, %v", c, again, err)
		}
	})
}
