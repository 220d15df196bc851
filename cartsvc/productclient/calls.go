package productclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"connectrpc.com/connect"
	"github.com/cenkalti/backoff/v4"
	"github.com/google/uuid"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
)

// maxBatch is BatchGetProducts' limit on ids per call.
const maxBatch = 100

// batchGet calls BatchGetProducts for ids, 100 at a time.
func (c *Client) batchGet(ctx context.Context, ids []uuid.UUID) ([]Product, error) {
	var out []Product
	for chunk := range slices.Chunk(ids, maxBatch) {
		resp, err := c.call(ctx, chunk)
		if err != nil {
			if !isCanceled(err) {
				c.unavailable.failed(time.Now(), err)
			}
			return out, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		out = append(out, products(resp, chunk)...)
	}
	return out, nil
}

// call makes one BatchGetProducts call through the breaker, retrying
// failures that count against productsvc while ctx allows. The client's
// telemetry passes on the trace of the request that started the fetch.
func (c *Client) call(ctx context.Context, ids []uuid.UUID) (*productv1.BatchGetProductsResponse, error) {
	req := &productv1.BatchGetProductsRequest{Ids: make([]string, len(ids))}
	for i, id := range ids {
		req.Ids[i] = id.String()
	}
	attempt := func() (*productv1.BatchGetProductsResponse, error) {
		resp, err := c.through(ctx, req)
		if err != nil && !retryable(err) {
			return nil, backoff.Permanent(err)
		}
		return resp, err
	}
	policy := backoff.WithContext(backoff.WithMaxRetries(c.backoff(), uint64(c.retries)), ctx)
	return backoff.RetryWithData(attempt, policy)
}

// through makes one call through the breaker.
func (c *Client) through(ctx context.Context, req *productv1.BatchGetProductsRequest) (*productv1.BatchGetProductsResponse, error) {
	if err := c.breaker.allow(); err != nil {
		return nil, err
	}
	c.calls.Add(1)
	actx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	addr := c.addrs.pick(time.Now())
	resp, err := c.addrs.rpcs[addr].BatchGetProducts(actx, connect.NewRequest(req))
	if err != nil {
		err = callError(actx, err)
		if isFailure(err) && !isCanceled(err) {
			c.addrs.failed(addr, time.Now())
		}
	}
	switch {
	case isCanceled(err):
		c.breaker.done(excluded)
	case err != nil && isFailure(err):
		c.breaker.done(failed)
	default:
		c.breaker.done(succeeded)
	}
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// products converts a response, keeping only the ids asked for.
func products(resp *productv1.BatchGetProductsResponse, asked []uuid.UUID) []Product {
	var out []Product
	for _, p := range resp.GetProducts() {
		id, err := uuid.Parse(p.GetId())
		if err != nil || !slices.Contains(asked, id) {
			continue
		}
		out = append(out, Product{
			ID:         id,
			Name:       p.GetName(),
			PriceMinor: p.GetPrice().GetAmountMinor(),
			Currency:   p.GetPrice().GetCurrencyCode(),
			Version:    p.GetVersion(),
		})
	}
	for _, s := range resp.GetMissingIds() {
		id, err := uuid.Parse(s)
		if err != nil || !slices.Contains(asked, id) {
			continue
		}
		out = append(out, Product{ID: id, Missing: true})
	}
	return out
}

// transportError is a connection failure that connect-go reports as
// Canceled: it reads a reset or broken connection as a peer that went
// away. It does not unwrap, so it is never mistaken for a cancellation.
type transportError struct{ err error }

func (e *transportError) Error() string { return "transport: " + e.err.Error() }

// callError is err of a call made with ctx, with a Canceled error that was
// not caused by ctx turned into the transport error it is.
func callError(ctx context.Context, err error) error {
	if ctx.Err() == nil && !connect.IsWireError(err) && connect.CodeOf(err) == connect.CodeCanceled {
		return &transportError{err}
	}
	return err
}

// isFailure reports whether err counts against productsvc: Unavailable,
// DeadlineExceeded, or a transport error (anything productsvc did not
// answer itself). NotFound, InvalidArgument and the other codes productsvc
// answers with do not count, nor does cancellation.
func isFailure(err error) bool {
	if isCanceled(err) {
		return false
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return true
	}
	switch ce.Code() {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded:
		return true
	}
	return !connect.IsWireError(ce)
}

func isCanceled(err error) bool {
	return err != nil && (errors.Is(err, context.Canceled) || connect.CodeOf(err) == connect.CodeCanceled)
}

// retryable reports whether another attempt may succeed: the failure was
// productsvc's, and the breaker did not refuse the call.
func retryable(err error) bool {
	if errors.Is(err, ErrOpenState) || errors.Is(err, ErrTooManyRequests) {
		return false
	}
	return isFailure(err)
}
