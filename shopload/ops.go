package shopload

import (
	"context"
	"math/rand/v2"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
)

// GetProduct reads a random product, anonymously (a public read), in
// binary protobuf or Connect JSON.
func (s *Shop) GetProduct(json bool) Op {
	client := s.Clients.Products
	if json {
		client = s.Clients.ProductsJSON
	}
	reqs := make([]*productv1.GetProductRequest, len(s.ProductIDs))
	for i, id := range s.ProductIDs {
		reqs[i] = &productv1.GetProductRequest{Id: id}
	}
	return func(ctx context.Context, w *Worker) error {
		_, err := client.GetProduct(ctx, connect.NewRequest(reqs[w.Rand.IntN(len(reqs))]))
		return err
	}
}

// GetCart reads a random user's cart through client. With onAnswer set,
// it is told whether each cart came back stale.
func (s *Shop) GetCart(client cartv1connect.CartServiceClient, onAnswer func(stale bool)) Op {
	msg := &cartv1.GetCartRequest{}
	return func(ctx context.Context, w *Worker) error {
		resp, err := client.GetCart(ctx, authed(msg, s.Users[w.Pick(len(s.Users))].Auth))
		if err == nil && onAnswer != nil {
			onAnswer(resp.Msg.GetCart().GetStale())
		}
		return err
	}
}

// ListProducts searches the catalog for a word about one product in ten
// carries, first page of 20.
func (s *Shop) ListProducts() Op {
	q := s.SearchWord
	msg := &productv1.ListProductsRequest{Query: &q, PageSize: 20}
	return func(ctx context.Context, w *Worker) error {
		_, err := s.Clients.Products.ListProducts(ctx, connect.NewRequest(msg))
		return err
	}
}

// AddedItem is an AddCartItem the service acknowledged.
type AddedItem struct {
	User      int
	ProductID string
	Quantity  int32
}

// AddCartItem adds one more of a random line to a random user's cart, with
// a request_id. Answers retry says are retried with the same request_id
// (so that it applies once) until the request's deadline. In a closed load each worker keeps to its own users,
// so no two of its writes wait for each other (cartsvc runs one write per
// user at a time).
// onAck, if set, hears of every acknowledged add.
func (s *Shop) AddCartItem(retry Retry, onAck func(AddedItem)) Op {
	return func(ctx context.Context, w *Worker) error {
		u := w.Pick(len(s.Users))
		user := s.Users[u]
		msg := &cartv1.AddCartItemRequest{ProductId: user.Lines[w.Rand.IntN(len(user.Lines))], Quantity: 1, RequestId: new(string)}
		*msg.RequestId = w.RequestID()
		err := call(ctx, retry, func() error {
			_, err := s.Clients.Cart.AddCartItem(ctx, authed(msg, user.Auth))
			return err
		})
		if err == nil && onAck != nil {
			onAck(AddedItem{User: u, ProductID: msg.ProductId, Quantity: msg.Quantity})
		}
		return err
	}
}

// Ack is an acknowledged catalog write: the product's new version.
type Ack struct {
	ProductID string
	Version   int64
	At        time.Time
}

// UpdateProduct sets a random price on a random product of ids, as admin;
// its event goes through the outbox. onAck, if set, hears of every
// acknowledged update. Answers retry says are retried until the request's
// deadline.
func (s *Shop) UpdateProduct(ids []string, retry Retry, onAck func(Ack)) Op {
	mask := &fieldmaskpb.FieldMask{Paths: []string{"price"}}
	return func(ctx context.Context, w *Worker) error {
		msg := &productv1.UpdateProductRequest{
			Product: &productv1.Product{
				Id:    ids[w.Rand.IntN(len(ids))],
				Price: &typev1.Money{CurrencyCode: "EUR", AmountMinor: 100 + w.Rand.Int64N(100_000)},
			},
			UpdateMask: mask,
		}
		var version int64
		err := call(ctx, retry, func() error {
			resp, err := s.Clients.Products.UpdateProduct(ctx, authed(msg, s.AdminAuth))
			if err == nil {
				version = resp.Msg.GetProduct().GetVersion()
			}
			return err
		})
		if err == nil && onAck != nil {
			onAck(Ack{ProductID: msg.Product.Id, Version: version, At: time.Now()})
		}
		return err
	}
}

// Retry says which answers a write retries.
type Retry int

const (
	// NoRetry takes every answer as final.
	NoRetry Retry = iota
	// RetryBusy retries ResourceExhausted (a per-user limit: try later).
	RetryBusy
	// RetryTransient retries Unavailable and ResourceExhausted.
	RetryTransient
)

func (r Retry) retries(code connect.Code) bool {
	return (r >= RetryBusy && code == connect.CodeResourceExhausted) || (r == RetryTransient && code == connect.CodeUnavailable)
}

// call runs f until it answers something retry does not retry or ctx
// ends, waiting between attempts with jittered exponential backoff (about
// 100 ms doubling to 800 ms), as a well-behaved client does: retrying every
// 100 ms spent a user's own rate limit on retries after an outage and kept
// them refused for seconds after the database was back. When ctx ends during an attempt after a
// retried answer, that answer is returned: the client gave up on a service
// that kept saying "retry", which is not the service failing to answer. An
// attempt started with less than lastGasp of ctx left counts as ending with
// ctx even when the service answered DeadlineExceeded a moment before the
// client's own deadline (the service's deadline is the client's, sent
// along); an attempt with more time than that must get a real answer.
func call(ctx context.Context, retry Retry, f func() error) error {
	var retried error
	for attempt := 0; ; attempt++ {
		began := time.Now()
		err := f()
		switch {
		case err == nil:
			return nil
		case retry.retries(connect.CodeOf(err)):
			retried = err
		case retried != nil && (ctx.Err() != nil || outOfTime(ctx, began, err)):
			return retried
		default:
			return err
		}
		select {
		case <-ctx.Done():
			return retried
		case <-time.After(retryWait(attempt)):
		}
	}
}

// retryWait is the wait after the attempt-th failed attempt (from 0): a
// random time between half and all of 100 ms·2^attempt, at most 800 ms.
func retryWait(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 3)
	return d/2 + rand.N(d/2+1)
}

// lastGasp is how little of its deadline an attempt may start with and
// still be excused for ending in DeadlineExceeded.
const lastGasp = time.Second

// outOfTime reports whether err is the service's DeadlineExceeded for an
// attempt that began with less than lastGasp left of ctx's deadline.
func outOfTime(ctx context.Context, began time.Time, err error) bool {
	deadline, ok := ctx.Deadline()
	return ok && connect.CodeOf(err) == connect.CodeDeadlineExceeded && deadline.Sub(began) < lastGasp
}
