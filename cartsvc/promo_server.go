package cartsvc

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/protobuf/types/known/timestamppb"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	cartdb "github.com/decoupledshop/shop/gen/sqlc/cart"
	"github.com/decoupledshop/shop/internal/pagetoken"
	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/shoperr"
)

// PromoCodeServer implements shop.cart.v1.PromoCodeService (admins only).
type PromoCodeServer struct {
	*Service
}

var _ cartv1connect.PromoCodeServiceHandler = (*PromoCodeServer)(nil)

// CreatePromoCode creates a code (stored upper case) taking percent_off
// (1..100) or amount_off (in the shop currency, 1..10^11 minor units) off
// a cart's subtotal from start_time (default now) to end_time (required,
// in the future, after start_time). max_redemptions ≥ 0, 0 meaning
// unlimited. AlreadyExists if the code is taken, whatever its case.
func (s *PromoCodeServer) CreatePromoCode(ctx context.Context, req *connect.Request[cartv1.CreatePromoCodeRequest]) (*connect.Response[cartv1.CreatePromoCodeResponse], error) {
	params, err := s.checkPromoCode(req.Msg, s.timestamp())
	if err != nil {
		return nil, err
	}
	code := params.Code
	p, err := s.q.CreatePromoCode(ctx, params)
	if pgdb.IsUniqueViolation(err, "promo_codes_pkey") {
		return nil, shoperr.AlreadyExists("promo code %s already exists", code)
	}
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&cartv1.CreatePromoCodeResponse{PromoCode: promoView(p, 0)}), nil
}

// timestamp converts a client timestamp at the database's precision.
func timestamp(field string, ts *timestamppb.Timestamp) (t time.Time, err error) {
	if err := ts.CheckValid(); err != nil {
		return t, shoperr.Invalid(field, "is not a valid timestamp")
	}
	return ts.AsTime().Truncate(time.Microsecond), nil
}

// ListPromoCodes pages through codes in (create_time desc, code) order,
// each with the number of carts holding it now (lapsed holds excluded).
func (s *PromoCodeServer) ListPromoCodes(ctx context.Context, req *connect.Request[cartv1.ListPromoCodesRequest]) (*connect.Response[cartv1.ListPromoCodesResponse], error) {
	rows, next, err := pagetoken.List(req.Msg.GetPageSize(), req.Msg.GetPageToken(), "",
		func(after pagetoken.Cursor, limit int32) ([]cartdb.ListPromoCodesRow, error) {
			return s.q.ListPromoCodes(ctx, cartdb.ListPromoCodesParams{
				Cutoff: s.holdCutoff(s.timestamp()), AfterTime: after.CreateTime, AfterCode: after.Key, PageLimit: limit,
			})
		},
		func(r cartdb.ListPromoCodesRow) pagetoken.Cursor {
			return pagetoken.Cursor{CreateTime: r.CreateTime, Key: r.Code}
		})
	if err != nil {
		return nil, err
	}
	resp := &cartv1.ListPromoCodesResponse{PromoCodes: make([]*cartv1.PromoCode, 0, len(rows)), NextPageToken: next}
	for _, r := range rows {
		resp.PromoCodes = append(resp.PromoCodes, promoView(cartdb.PromoCode{
			Code: r.Code, PercentOff: r.PercentOff, AmountOffMinor: r.AmountOffMinor, CurrencyCode: r.CurrencyCode,
			MaxRedemptions: r.MaxRedemptions, StartTime: r.StartTime, EndTime: r.EndTime, Active: r.Active,
			CreateTime: r.CreateTime,
		}, r.Redemptions))
	}
	return connect.NewResponse(resp), nil
}

// DeactivatePromoCode stops a code from being applied and releases every
// hold of it, so carts holding it lose its discount. Deactivating it again
// is a no-op. NotFound for an unknown code.
func (s *PromoCodeServer) DeactivatePromoCode(ctx context.Context, req *connect.Request[cartv1.DeactivatePromoCodeRequest]) (*connect.Response[cartv1.DeactivatePromoCodeResponse], error) {
	c, err := checkWrite(cartv1connect.PromoCodeServiceDeactivatePromoCodeProcedure, req.Msg)
	if err != nil {
		return nil, err
	}
	code := c.code
	var p cartdb.PromoCode
	err = s.inTx(ctx, func(q *cartdb.Queries) error {
		var err error
		p, err = q.DeactivatePromoCode(ctx, code)
		if isNoRows(err) {
			return shoperr.NotFound("promo code %s not found", code)
		}
		if err != nil {
			return err
		}
		return q.ReleaseHoldsOfCode(ctx, code)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&cartv1.DeactivatePromoCodeResponse{PromoCode: promoView(p, 0)}), nil
}

// checkPromoCode checks a CreatePromoCode request at now (see
// CreatePromoCode) and returns the row to insert, or InvalidArgument
// naming the bad field.
func (s *Service) checkPromoCode(m *cartv1.CreatePromoCodeRequest, now time.Time) (cartdb.CreatePromoCodeParams, error) {
	var params cartdb.CreatePromoCodeParams
	code, err := parseCode("code", m.GetCode())
	if err != nil {
		return params, err
	}
	params = cartdb.CreatePromoCodeParams{Code: code, CurrencyCode: string(s.currency), CreateTime: now}
	switch d := m.GetDiscount().(type) {
	case *cartv1.CreatePromoCodeRequest_PercentOff:
		if d.PercentOff < 1 || d.PercentOff > 100 {
			return params, shoperr.Invalid("percent_off", "must be between 1 and 100")
		}
		params.PercentOff = pgtype.Int4{Int32: d.PercentOff, Valid: true}
	case *cartv1.CreatePromoCodeRequest_AmountOff:
		amount, err := s.currency.CheckPrice("amount_off", d.AmountOff)
		if err != nil {
			return params, err
		}
		if amount == 0 {
			return params, shoperr.Invalid("amount_off.amount_minor", "must be positive")
		}
		params.AmountOffMinor = pgtype.Int8{Int64: amount, Valid: true}
	default:
		return params, shoperr.Invalid("discount", "set percent_off or amount_off")
	}
	if m.GetMaxRedemptions() < 0 {
		return params, shoperr.Invalid("max_redemptions", "must not be negative")
	}
	params.MaxRedemptions = m.GetMaxRedemptions()
	params.StartTime = now
	if m.StartTime != nil {
		if params.StartTime, err = timestamp("start_time", m.StartTime); err != nil {
			return params, err
		}
	}
	if m.EndTime == nil {
		return params, shoperr.Invalid("end_time", "is required")
	}
	if params.EndTime, err = timestamp("end_time", m.EndTime); err != nil {
		return params, err
	}
	switch {
	case !params.EndTime.After(params.StartTime):
		return params, shoperr.Invalid("end_time", "must be after start_time")
	case !params.EndTime.After(now):
		return params, shoperr.Invalid("end_time", "must be in the future")
	}
	return params, nil
}
