package productsvc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/input"
)

// RequestRetention is how long the result of a catalog write with a
// request_id is kept: a repeat within it returns the first result.
const RequestRetention = 24 * time.Hour

// pruneBatch is how many expired results a write with a request_id
// deletes, so that pruning keeps up without a janitor.
const pruneBatch = 10

// writeOnce runs write in a transaction like inTx. With a request_id
// (requestID not nil), the caller's earlier result for that id is returned
// instead, if there is one within RequestRetention; otherwise write's
// response is stored with it in the same transaction. Retries of one id
// wait for each other (a transaction-scoped lock), so a retry racing its
// first attempt returns that attempt's result.
func writeOnce[R proto.Message](ctx context.Context, c *Store, procedure string, requestID *string, req proto.Message,
	write func(tx pgx.Tx, q *productdb.Queries) (R, error)) (R, error) {
	var resp R
	if requestID == nil {
		err := c.inTx(ctx, func(tx pgx.Tx, q *productdb.Queries) error {
			var err error
			resp, err = write(tx, q)
			return err
		})
		return resp, err
	}
	fingerprint, err := input.Fingerprint(procedure, *requestID, req)
	if err != nil {
		return resp, err
	}
	var subject string
	if id, ok := auth.FromContext(ctx); ok {
		subject = id.Subject
	}
	err = c.inTx(ctx, func(tx pgx.Tx, q *productdb.Queries) error {
		if err := q.LockRequest(ctx, productdb.LockRequestParams{Subject: subject, RequestID: *requestID}); err != nil {
			return err
		}
		now := c.timestamp()
		stored, err := q.GetRequestResult(ctx, productdb.GetRequestResultParams{
			Subject: subject, RequestID: *requestID, Cutoff: now.Add(-RequestRetention),
		})
		switch {
		case err == nil:
			if !bytes.Equal(stored.Fingerprint, fingerprint) {
				return input.ErrRequestIDReused
			}
			resp = resp.ProtoReflect().Type().New().Interface().(R)
			if err := proto.Unmarshal(stored.Response, resp); err != nil {
				return fmt.Errorf("stored response of request %q: %w", *requestID, err)
			}
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if resp, err = write(tx, q); err != nil {
			return err
		}
		body, err := proto.Marshal(resp)
		if err != nil {
			return err
		}
		if err := q.SaveRequestResult(ctx, productdb.SaveRequestResultParams{
			Subject: subject, RequestID: *requestID, Fingerprint: fingerprint, Response: body, CreateTime: now,
		}); err != nil {
			return err
		}
		_, err = q.PruneRequestResults(ctx, productdb.PruneRequestResultsParams{Cutoff: now.Add(-RequestRetention), Batch: pruneBatch})
		return err
	})
	return resp, err
}

// then adapts a write that fills variables of its handler to writeOnce:
// after write succeeds, respond builds the response from them.
func then[R proto.Message](write func(tx pgx.Tx, q *productdb.Queries) error, respond func() R) func(pgx.Tx, *productdb.Queries) (R, error) {
	return func(tx pgx.Tx, q *productdb.Queries) (R, error) {
		if err := write(tx, q); err != nil {
			var zero R
			return zero, err
		}
		return respond(), nil
	}
}
