// Package pagetoken implements the shop's list pagination: page sizes with a
// default and a cap, and opaque keyset page tokens for lists ordered by
// (create_time desc, key) that are bound to the filters they were issued for.
package pagetoken

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/decoupledshop/shop/internal/shoperr"
)

// Page sizes: DefaultSize when the request says 0, never more than MaxSize.
const (
	DefaultSize = 50
	MaxSize     = 100
)

// Size returns the page size to use for a request's page_size: DefaultSize
// for 0, MaxSize for anything larger, and an Invalid error naming
// "page_size" for a negative value.
func Size(requested int32) (int32, error) {
	switch {
	case requested < 0:
		return 0, shoperr.Invalid("page_size", "must not be negative")
	case requested == 0:
		return DefaultSize, nil
	case requested > MaxSize:
		return MaxSize, nil
	}
	return requested, nil
}

// Cursor is the position after the last item of a page.
type Cursor struct {
	// CreateTime of the last item (microsecond precision, as stored).
	CreateTime time.Time
	// Key is the last item's tie-breaking key (its id or code).
	Key string
}

// KeyUUID returns the cursor's key as a UUID, uuid.Nil for First, and an
// Invalid error naming "page_token" when the key is not a UUID (which only
// a forged token can carry, for lists keyed by UUID).
func (c Cursor) KeyUUID() (uuid.UUID, error) {
	if c == First {
		return uuid.Nil, nil
	}
	id, err := uuid.Parse(c.Key)
	if err != nil {
		return uuid.Nil, shoperr.Invalid("page_token", "is not a token this service issued")
	}
	return id, nil
}

// First is the cursor before the first item: after every stored row in
// (create_time desc, key) order.
var First = Cursor{CreateTime: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}

// minMicros is the earliest cursor time Decode accepts: year 1.
var minMicros = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

type wire struct {
	T int64  `json:"t"`
	K string `json:"k"`
	F string `json:"f"`
}

// Encode returns an opaque token for the page after c, bound to filters: a
// token is only accepted back with the same filters string.
func Encode(c Cursor, filters string) string {
	b, _ := json.Marshal(wire{T: c.CreateTime.UnixMicro(), K: c.Key, F: fingerprint(filters)})
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode returns the cursor of token, First for an empty token, and an
// Invalid error naming "page_token" when the token is malformed or was
// issued for other filters.
func Decode(token, filters string) (Cursor, error) {
	if token == "" {
		return First, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) > 512 {
		return Cursor{}, shoperr.Invalid("page_token", "is not a token this service issued")
	}
	var w wire
	if err := json.Unmarshal(raw, &w); err != nil || w.K == "" || strings.ContainsRune(w.K, 0) ||
		w.T < minMicros || w.T > First.CreateTime.UnixMicro() {
		// Only a forged token carries a key PostgreSQL cannot store (NUL) or
		// a time outside what the lists hold.
		return Cursor{}, shoperr.Invalid("page_token", "is not a token this service issued")
	}
	if w.F != fingerprint(filters) {
		return Cursor{}, shoperr.Invalid("page_token", "was issued for other filters; start again without a page token")
	}
	c := Cursor{CreateTime: time.UnixMicro(w.T).UTC(), Key: w.K}
	if len(Encode(c, filters)) > base64.RawURLEncoding.EncodedLen(512) {
		// Only a forged key grows past the limit when encoded again (JSON
		// escapes it), so the page after it would carry a refused token.
		return Cursor{}, shoperr.Invalid("page_token", "is not a token this service issued")
	}
	return c, nil
}

func fingerprint(filters string) string {
	sum := sha256.Sum256([]byte(filters))
	return hex.EncodeToString(sum[:8])
}

// Page cuts rows, fetched with a limit of size+1, to at most size and
// returns the token for the page after them, bound to filters ("" when
// there is no further row). cursor gives a row's position.
func Page[T any](rows []T, size int32, filters string, cursor func(T) Cursor) ([]T, string) {
	if len(rows) <= int(size) {
		return rows, ""
	}
	rows = rows[:size]
	return rows, Encode(cursor(rows[size-1]), filters)
}

// List is one page of a list RPC: it checks the requested page size (see
// Size), decodes token bound to filters (see Decode), runs query for at
// most limit rows after the decoded cursor (limit is one more than the page
// size), and returns the page with the token for the next one (see Page).
func List[T any](pageSize int32, token, filters string, query func(after Cursor, limit int32) ([]T, error), cursor func(T) Cursor) ([]T, string, error) {
	size, err := Size(pageSize)
	if err != nil {
		return nil, "", err
	}
	after, err := Decode(token, filters)
	if err != nil {
		return nil, "", err
	}
	rows, err := query(after, size+1)
	if err != nil {
		return nil, "", err
	}
	rows, next := Page(rows, size, filters, cursor)
	return rows, next, nil
}
