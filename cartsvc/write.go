package cartsvc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/decoupledshop/shop/cartsvc/catalog"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// requestKey is the request_id of a retry-safe write with the fingerprint
// of the request it names.
type requestKey struct {
	id          string
	fingerprint []byte
}

// maxRequestID is the longest request_id accepted, in characters.
const maxRequestID = 64

// newRequestKey returns the key of req, a request of procedure with an
// optional request_id field, or nil when req has no request_id. The
// fingerprint covers the procedure and every other field of req.
func newRequestKey(procedure string, requestID *string, req proto.Message) (*requestKey, error) {
	if requestID == nil {
		return nil, nil
	}
	id := *requestID
	if n := utf8.RuneCountInString(id); n < 1 || n > maxRequestID {
		return nil, shoperr.Invalid("request_id", "must be 1 to %d characters when set", maxRequestID)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return nil, shoperr.Invalid("request_id", "must not contain control characters")
		}
	}
	m := proto.Clone(req).ProtoReflect()
	m.Clear(m.Descriptor().Fields().ByName("request_id"))
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(m.Interface())
	if err != nil {
		return nil, fmt.Errorf("fingerprint request: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(procedure))
	h.Write([]byte{0})
	h.Write(body)
	return &requestKey{id: id, fingerprint: h.Sum(nil)}, nil
}

// errRequestIDReused is returned for a request_id already used, within the
// retention window, by a different request.
var errRequestIDReused = shoperr.Invalid("request_id", "was already used for a different request; use a new request_id for a new request")

// storedResult returns the stored response for key, if any was stored within
// RequestRetention of the service's clock.
func storedResult[R proto.Message](ctx context.Context, s *Service, q *cartdb.Queries, user string, key *requestKey) (R, bool, error) {
	var zero R
	row, err := q.GetRequestResult(ctx, cartdb.GetRequestResultParams{
		UserID: user, RequestID: key.id, Cutoff: s.timestamp().Add(-RequestRetention),
	})
	if isNoRows(err) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, err
	}
	if !bytes.Equal(row.Fingerprint, key.fingerprint) {
		return zero, false, errRequestIDReused
	}
	resp := zero.ProtoReflect().Type().New().Interface().(R)
	if err := proto.Unmarshal(row.Response, resp); err != nil {
		return zero, false, fmt.Errorf("stored response of request %q: %w", key.id, err)
	}
	return resp, true, nil
}

// cartWrite is one cart write in progress: its transaction's queries, the
// user, the write's time, and the product data resolved before the
// transaction began.
type cartWrite struct {
	ctx      context.Context
	s        *Service
	q        *cartdb.Queries
	user     string
	now      time.Time
	products map[uuid.UUID]catalog.Entry
}

// writeCart runs a write of the user's cart and returns its response.
//
//  1. A repeat of a request_id (key) within RequestRetention returns the
//     stored response without doing anything (a different request with the
//     same request_id is InvalidArgument).
//  2. Product data for the cart's lines is looked up (cache, then one
//     BatchGetProducts call; snapshots stand in when productsvc does not
//     answer) and the products in fresh, which the write adds to the cart,
//     are fetched live: apply gets them from freshProduct, which fails with
//     Unavailable if productsvc did not answer. Adding a new product to a
//     full cart fails here, before any call.
//  3. In one transaction holding the cart's row lock: step 1 again (a
//     concurrent repeat may have just committed), lapsed and dead holds are
//     dropped, the cart is marked written at now, apply runs, and its
//     response is stored under key. So a write and its stored result
//     commit together, and concurrent repeats apply once.
func writeCart[R proto.Message](ctx context.Context, s *Service, user string, key *requestKey, fresh []uuid.UUID, apply func(w *cartWrite) (R, error)) (R, error) {
	var zero R
	if key != nil {
		if resp, ok, err := storedResult[R](ctx, s, s.q, user, key); err != nil || ok {
			return resp, err
		}
	}
	lines, err := s.q.ListCartLines(ctx, user)
	if err != nil {
		return zero, err
	}
	if len(lines) >= MaxCartLines {
		for _, id := range fresh {
			if !slices.ContainsFunc(lines, func(l cartdb.ListCartLinesRow) bool { return l.ProductID == id }) {
				return zero, errCartFull
			}
		}
	}
	products, err := s.resolve(ctx, lines, fresh)
	if err != nil {
		return zero, err
	}
	var resp R
	err = s.inTx(ctx, func(q *cartdb.Queries) error {
		now := s.timestamp()
		prev, err := q.LockCart(ctx, cartdb.LockCartParams{UserID: user, Now: now})
		if err != nil {
			return err
		}
		if key != nil {
			stored, ok, err := storedResult[R](ctx, s, q, user, key)
			if err != nil || ok {
				resp = stored
				return err
			}
		}
		lapsed := prev.Before(s.holdCutoff(now))
		if err := q.DropDeadHolds(ctx, cartdb.DropDeadHoldsParams{UserID: user, Lapsed: lapsed, Now: now}); err != nil {
			return err
		}
		if err := q.TouchCart(ctx, cartdb.TouchCartParams{UserID: user, Now: now}); err != nil {
			return err
		}
		w := &cartWrite{ctx: ctx, s: s, q: q, user: user, now: now, products: products}
		r, err := apply(w)
		if err != nil {
			return err
		}
		if key != nil {
			body, err := proto.Marshal(r)
			if err != nil {
				return fmt.Errorf("marshal response of request %q: %w", key.id, err)
			}
			err = q.SaveRequestResult(ctx, cartdb.SaveRequestResultParams{
				UserID: user, RequestID: key.id, Fingerprint: key.fingerprint, Response: body,
				Now: now, Cutoff: now.Add(-RequestRetention),
			})
			if err != nil {
				return err
			}
		}
		resp = r
		return nil
	})
	if err != nil {
		return zero, err
	}
	return resp, nil
}

var errCartFull = shoperr.ResourceExhausted("a cart holds at most %d different products", MaxCartLines)

// cart returns the cart as the write leaves it.
func (w *cartWrite) cart() (*cartv1.Cart, error) {
	lines, err := w.q.ListCartLines(w.ctx, w.user)
	if err != nil {
		return nil, err
	}
	holds, err := w.q.ListCartHolds(w.ctx, cartdb.ListCartHoldsParams{UserID: w.user, Cutoff: w.s.holdCutoff(w.now), Now: w.now})
	if err != nil {
		return nil, err
	}
	return buildCart(w.s.currency, lines, holds, w.products)
}

// addLine adds quantity of a fresh product to the cart: to its line, whose
// snapshot and added price it renews, or as a new line. A line above
// MaxQuantity is InvalidArgument naming quantity, a new line in a full cart
// ResourceExhausted.
func (w *cartWrite) addLine(id uuid.UUID, quantity int32) error {
	p, err := w.s.freshProduct(w.products, id)
	if err != nil {
		return err
	}
	have, err := w.q.GetCartLineQuantity(w.ctx, cartdb.GetCartLineQuantityParams{UserID: w.user, ProductID: id})
	switch {
	case isNoRows(err):
		n, err := w.q.CountCartLines(w.ctx, w.user)
		if err != nil {
			return err
		}
		if n >= MaxCartLines {
			return errCartFull
		}
	case err != nil:
		return err
	}
	if total := have + quantity; total > MaxQuantity {
		return shoperr.Invalid("quantity", "the cart would hold %d of this product; at most %d", total, MaxQuantity)
	}
	return w.q.PutCartLine(w.ctx, cartdb.PutCartLineParams{
		UserID: w.user, ProductID: id, Quantity: have + quantity,
		Name: p.Name, UnitPriceMinor: p.PriceMinor, CurrencyCode: p.Currency, ProductVersion: p.Version,
		Now: w.now,
	})
}
