package cartsvc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/decoupledshop/shop/cartsvc/productclient"
	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
	"github.com/decoupledshop/shop/internal/input"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// requestKey is the request_id of a retry-safe write with the fingerprint
// of the request it names.
type requestKey struct {
	id          string
	fingerprint []byte
}

// newRequestKey returns the key of req, a request of procedure with an
// optional request_id field, or nil when req has no request_id. The
// fingerprint covers the procedure and every other field of req.
func newRequestKey(procedure string, requestID *string, req proto.Message) (*requestKey, error) {
	if requestID == nil {
		return nil, nil
	}
	fingerprint, err := input.Fingerprint(procedure, *requestID, req)
	if err != nil {
		return nil, err
	}
	return &requestKey{id: *requestID, fingerprint: fingerprint}, nil
}

// storedResult decodes the stored response of key's request, if one was
// found (fingerprint and response not nil); a different request stored
// under the same request_id is input.ErrRequestIDReused.
func storedResult[R proto.Message](key *requestKey, fingerprint, response []byte) (R, bool, error) {
	var zero R
	if key == nil || fingerprint == nil {
		return zero, false, nil
	}
	if !bytes.Equal(fingerprint, key.fingerprint) {
		return zero, false, input.ErrRequestIDReused
	}
	resp := zero.ProtoReflect().Type().New().Interface().(R)
	if err := proto.Unmarshal(response, resp); err != nil {
		return zero, false, fmt.Errorf("stored response of request %q: %w", key.id, err)
	}
	return resp, true, nil
}

// requestID is key's request_id, or "" (which asks the queries for none).
func (key *requestKey) requestID() string {
	if key == nil {
		return ""
	}
	return key.id
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
	products map[uuid.UUID]productclient.Entry
	// deleted holds the products known to be deleted when the cart was
	// read before the transaction.
	deleted map[uuid.UUID]bool
	// pre is the cart read before the transaction when nothing has changed
	// it since (see unchangedSince), else nil; added is the line addLine
	// wrote to it, if it had that line already.
	pre   *cartView
	added *cartLine
}

// writeCart runs a write of the user's cart and returns its response.
//
//  1. One read (readCart) gets the cart's lines, a stored result of a
//     request_id (key) and the marks of the products in fresh. A repeat of
//     a request_id within RequestRetention returns the stored response
//     without doing anything (a different request with the same request_id
//     is InvalidArgument).
//  2. Product data for the cart's lines is looked up (cache, then one
//     BatchGetProducts call; snapshots stand in when productsvc does not
//     answer) and the products in fresh, which the write adds to the cart,
//     are fetched live: apply gets them from freshProduct, which fails with
//     Unavailable if productsvc did not answer. Adding a new product to a
//     full cart fails here, before any call.
//  3. In one transaction holding the cart's row lock (LockCart):
//     PrepareCartWrite looks for a stored result again (a concurrent repeat
//     may have just committed) and, if there is none, drops lapsed and dead
//     holds and marks the cart written at now; apply runs, and its
//     response is stored under key. So a write and its stored result
//     commit together, and concurrent repeats apply once.
func writeCart[R proto.Message](ctx context.Context, s *Service, user string, key *requestKey, fresh []uuid.UUID, apply func(w *cartWrite) (R, error)) (R, error) {
	var zero R
	view, err := s.readCart(ctx, s.q, user, key, fresh)
	if err != nil {
		return zero, err
	}
	if resp, ok, err := storedResult[R](key, view.fingerprint, view.response); err != nil || ok {
		return resp, err
	}
	if err := checkRoom(view.lines, fresh); err != nil {
		return zero, err
	}
	products, err := s.resolve(ctx, view, fresh)
	if err != nil {
		return zero, err
	}
	var resp R
	err = s.inTx(ctx, func(q *cartdb.Queries) error {
		now := s.timestamp()
		r, revision, ok, err := prepareCartWrite[R](ctx, s, q, user, key, now)
		if err != nil || ok {
			resp = r
			return err
		}
		w := &cartWrite{ctx: ctx, s: s, q: q, user: user, now: now, products: products, deleted: view.deleted()}
		if s.unchangedSince(view, revision) {
			w.pre = &view
		}
		if r, err = apply(w); err != nil {
			return err
		}
		resp = r
		return w.saveResult(key, r)
	})
	if err != nil {
		return zero, err
	}
	return resp, nil
}

// checkRoom fails with errCartFull when a cart of lines is full and fresh
// holds a product not in it.
func checkRoom(lines []cartLine, fresh []uuid.UUID) error {
	if len(lines) >= MaxCartLines {
		for _, id := range fresh {
			if !slices.ContainsFunc(lines, func(l cartLine) bool { return l.ProductID == id }) {
				return errCartFull
			}
		}
	}
	return nil
}

// prepareCartWrite takes the cart's row lock (lockCart) and runs
// PrepareCartWrite: it returns the stored result of key's request (ok) if
// a concurrent repeat has just committed one, else drops lapsed and dead
// holds and marks the cart written at now. It also returns the cart's
// revision before the write (0 for a new cart).
func prepareCartWrite[R proto.Message](ctx context.Context, s *Service, q *cartdb.Queries, user string, key *requestKey, now time.Time) (R, int64, bool, error) {
	var zero R
	prev, err := lockCart(ctx, q, user, now)
	if err != nil {
		return zero, 0, false, err
	}
	stored, err := q.PrepareCartWrite(ctx, cartdb.PrepareCartWriteParams{
		UserID: user, RequestID: key.requestID(), RequestCutoff: now.Add(-RequestRetention),
		Lapsed: prev.UpdateTime.Before(s.holdCutoff(now)), Now: now,
	})
	if err != nil {
		return zero, 0, false, err
	}
	r, ok, err := storedResult[R](key, stored.RequestFingerprint, stored.RequestResponse)
	return r, prev.Revision, ok, err
}

// unchangedSince reports whether the cart's lines are still those of view,
// read before the write's transaction, given the revision the transaction
// locked: no cart write has committed since (same revision), and no event
// about its products has been heard since (see cartCache). A cart holding
// promo codes never counts as unchanged: whether a hold still gives a
// discount depends on the time and the code.
func (s *Service) unchangedSince(view cartView, revision int64) bool {
	return revision != 0 && revision == view.revision && len(view.holds) == 0 && !s.products.Outdated(lineWants(view.lines))
}

// saveResult stores resp as the result of key's request, if key is not
// nil.
func (w *cartWrite) saveResult(key *requestKey, resp proto.Message) error {
	if key == nil {
		return nil
	}
	body, err := proto.Marshal(resp)
	if err != nil {
		return fmt.Errorf("marshal response of request %q: %w", key.id, err)
	}
	return w.q.SaveRequestResult(w.ctx, cartdb.SaveRequestResultParams{
		UserID: w.user, RequestID: key.id, Fingerprint: key.fingerprint, Response: body,
		Now: w.now, Cutoff: w.now.Add(-RequestRetention),
	})
}

// lockCart runs LockCart, again if the cart was being created by another
// transaction (no row: that transaction has committed by then, or rolled
// back).
func lockCart(ctx context.Context, q *cartdb.Queries, user string, now time.Time) (cartdb.LockCartRow, error) {
	prev, err := q.LockCart(ctx, cartdb.LockCartParams{UserID: user, Now: now})
	if errors.Is(err, pgx.ErrNoRows) {
		prev, err = q.LockCart(ctx, cartdb.LockCartParams{UserID: user, Now: now})
	}
	return prev, err
}

var errCartFull = shoperr.ResourceExhausted("a cart holds at most %d different products", MaxCartLines)

// cart returns the cart as the write leaves it. When the write only
// changed an existing line with addLine in a cart unchanged since it was
// read before the transaction, that is the cart read then with the line
// as written; otherwise the cart is read again. The known versions are not
// read again: the products were resolved with those read before the
// transaction, a tombstone seen then stays, and one applied since has
// marked its lines unavailable (ApplyEvents, in the same transaction as
// the tombstone).
func (w *cartWrite) cart() (*cartv1.Cart, error) {
	if i := w.addedAt(); i >= 0 {
		lines := slices.Clone(w.pre.lines)
		a := *w.added
		a.KnownVersion, a.KnownDeleted = lines[i].KnownVersion, lines[i].KnownDeleted
		lines[i] = a
		return buildCart(w.s.currency, lines, nil, w.products)
	}
	view, err := w.s.readCartView(w.ctx, w.q, w.user, nil, nil, false)
	if err != nil {
		return nil, err
	}
	for i, l := range view.lines {
		view.lines[i].KnownDeleted = w.deleted[l.ProductID]
	}
	return buildCart(w.s.currency, view.lines, view.holds, w.products)
}

// addLine adds quantity of a fresh product to the cart: to its line, whose
// snapshot and added price it renews, or as a new line. A line above
// MaxQuantity is InvalidArgument naming quantity, a new line in a full cart
// ResourceExhausted. cart then builds the cart from the line as written
// (see cart): a write that calls addLine must change the cart's lines and
// holds in no other way.
func (w *cartWrite) addLine(id uuid.UUID, quantity int32) error {
	p, err := w.s.freshProduct(w.products, id)
	if err != nil {
		return err
	}
	r, err := w.q.AddCartLine(w.ctx, cartdb.AddCartLineParams{
		UserID: w.user, ProductID: id, Quantity: quantity,
		Name: p.Name, UnitPriceMinor: p.PriceMinor, CurrencyCode: p.Currency, ProductVersion: p.Version,
		Now: w.now, MaxQuantity: MaxQuantity, MaxLines: MaxCartLines,
	})
	switch {
	case err != nil:
		return err
	case r.Written:
		w.noteAdded(id, r)
		return nil
	case r.Had == 0 && r.Lines >= MaxCartLines:
		return errCartFull
	}
	return shoperr.Invalid("quantity", "the cart would hold %d of this product; at most %d", r.Had+quantity, MaxQuantity)
}

// addedAt is the index of the line addLine changed among the lines of
// the cart read before the transaction, or -1 when cart must read the
// cart again.
func (w *cartWrite) addedAt() int {
	if w.pre == nil || w.added == nil {
		return -1
	}
	return slices.IndexFunc(w.pre.lines, func(l cartLine) bool { return l.ProductID == w.added.ProductID })
}

// noteAdded records the line addLine wrote, for cart, when the cart read
// before the transaction is still current and had the line: a new line
// takes its place by add_time among lines whose add_times that read does
// not have, so the cart is then read again.
func (w *cartWrite) noteAdded(id uuid.UUID, r cartdb.AddCartLineRow) {
	if w.pre == nil || w.added != nil || r.Had == 0 {
		w.pre = nil // any other change: read the cart again
		return
	}
	w.added = &cartLine{
		ProductID: id, Quantity: r.LineQuantity, Name: r.LineName,
		UnitPriceMinor: r.LineUnitPriceMinor, AddedUnitPriceMinor: r.LineAddedUnitPriceMinor,
		CurrencyCode: r.LineCurrencyCode, ProductVersion: r.LineProductVersion, Available: r.LineAvailable,
	}
}
