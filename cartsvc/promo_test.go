package cartsvc_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

func percentOff(code string, percent int32, max int32) *cartv1.CreatePromoCodeRequest {
	return &cartv1.CreatePromoCodeRequest{Code: code, Discount: &cartv1.CreatePromoCodeRequest_PercentOff{PercentOff: percent}, MaxRedemptions: max}
}

func amountOff(code string, amount int64) *cartv1.CreatePromoCodeRequest {
	return &cartv1.CreatePromoCodeRequest{Code: code, Discount: &cartv1.CreatePromoCodeRequest_AmountOff{AmountOff: eur(amount)}}
}

func (b *testBundle) apply(who, code string) (*cartv1.Cart, error) {
	resp, err := b.carts(who).ApplyPromoCode(context.Background(), connect.NewRequest(&cartv1.ApplyPromoCodeRequest{Code: code}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Cart, nil
}

func (b *testBundle) listPromos(t *testing.T) map[string]*cartv1.PromoCode {
	t.Helper()
	resp, err := b.promos("admin").ListPromoCodes(context.Background(), connect.NewRequest(&cartv1.ListPromoCodesRequest{}))
	if err != nil {
		t.Fatalf("ListPromoCodes: %v", err)
	}
	out := map[string]*cartv1.PromoCode{}
	for _, p := range resp.Msg.PromoCodes {
		out[p.Code] = p
	}
	return out
}

// TestPromoRace: 50 users race for a code limited to 10 carts; exactly 10
// hold it. A released hold (removal, clear) and a lapsed one (cart idle
// longer than the hold idle time) free a place.
func TestPromoRace(t *testing.T) {
	t.Parallel()
	const users, limit = 50, 10
	b := setup(t, withShoppers(users))
	b.createPromo(t, percentOff("launch", 10, limit))

	errs := make([]error, users)
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() { _, errs[i] = b.apply(shopper(i), "LAUNCH") })
	}
	wg.Wait()
	var holders []int
	for i, err := range errs {
		switch shoptest.Code(err) {
		case 0:
			holders = append(holders, i)
		case connect.CodeResourceExhausted:
		default:
			t.Errorf("shopper %d: %v; want success or ResourceExhausted", i, err)
		}
	}
	if len(holders) != limit {
		t.Fatalf("%d carts hold the code, want exactly %d", len(holders), limit)
	}
	if got := b.listPromos(t)["LAUNCH"].Redemptions; got != limit {
		t.Errorf("ListPromoCodes reports %d redemptions, want %d", got, limit)
	}
	loser := 0
	for loser < users && errs[loser] == nil {
		loser++
	}

	// Removing the code frees a place for someone else.
	if _, err := b.carts(shopper(holders[0])).RemovePromoCode(context.Background(), connect.NewRequest(&cartv1.RemovePromoCodeRequest{Code: "launch"})); err != nil {
		t.Fatal(err)
	}
	if _, err := b.apply(shopper(loser), "launch"); err != nil {
		t.Fatalf("applying after a hold was released: %v", err)
	}
	if _, err := b.apply(shopper(holders[0]), "launch"); shoptest.Code(err) != connect.CodeResourceExhausted {
		t.Fatalf("applying to a full code again: %v, want ResourceExhausted", err)
	}
	// So does clearing a cart.
	if _, err := b.carts(shopper(holders[1])).ClearCart(context.Background(), connect.NewRequest(&cartv1.ClearCartRequest{})); err != nil {
		t.Fatal(err)
	}
	if _, err := b.apply(shopper(holders[0]), "launch"); err != nil {
		t.Fatalf("applying after a cart holding the code was cleared: %v", err)
	}

	// After a day without writes every hold has lapsed: none counts, the
	// carts show no discount, and the janitor deletes them.
	b.clock.Advance(24*time.Hour + time.Minute)
	if got := b.listPromos(t)["LAUNCH"].Redemptions; got != 0 {
		t.Errorf("after the idle time ListPromoCodes reports %d redemptions, want 0", got)
	}
	if c := b.cart(t, shopper(holders[2])); len(c.PromoCodes) != 0 {
		t.Errorf("a cart idle for a day still shows %v", c.PromoCodes)
	}
	for i := range limit {
		if _, err := b.apply(shopper(20+i), "launch"); err != nil {
			t.Fatalf("applying after the holds lapsed: %v", err)
		}
	}
	before := b.count(t, "SELECT count(*) FROM cart_promo_codes")
	_, holds, err := b.svc.Prune(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if left := b.count(t, "SELECT count(*) FROM cart_promo_codes"); before <= limit || holds != int64(before-limit) || left != limit {
		t.Errorf("of %d holds Prune deleted %d and left %d; want the lapsed ones deleted and the %d new ones left", before, holds, left, limit)
	}
}

// TestPromoRules covers applying codes: case-insensitive, one per cart,
// validity window, deactivation, unknown codes.
func TestPromoRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.add(t, "alice", b.createProduct(t, "Boots", 10000), 1)
	b.createPromo(t, percentOff("TEN", 10, 0))
	b.createPromo(t, amountOff("five-off", 500))
	b.createPromo(t, &cartv1.CreatePromoCodeRequest{
		Code: "LATER", Discount: &cartv1.CreatePromoCodeRequest_PercentOff{PercentOff: 50},
		StartTime: timestamppb.New(b.clock.Now().Add(time.Hour)), EndTime: timestamppb.New(b.clock.Now().Add(2 * time.Hour)),
	})

	c, err := b.apply("alice", "ten")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.PromoCodes) != 1 || c.PromoCodes[0].Code != "TEN" || c.Discount.GetAmountMinor() != 1000 || c.Total.GetAmountMinor() != 9000 {
		t.Errorf("cart with TEN = %v; want 10.00 off 100.00", c)
	}
	if _, err := b.apply("alice", "TEN"); err != nil {
		t.Errorf("applying the held code again: %v, want a no-op", err)
	}
	_, err = b.apply("alice", "FIVE-OFF")
	if shoptest.Code(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "TEN") {
		t.Errorf("a second code: %v, want FailedPrecondition naming the held code", err)
	}
	for code, want := range map[string]connect.Code{
		"NOPE":     connect.CodeNotFound,
		"LATER":    connect.CodeFailedPrecondition,
		"x":        connect.CodeInvalidArgument,
		"BAD CODE": connect.CodeInvalidArgument,
	} {
		if _, err := b.apply("bob", code); shoptest.Code(err) != want {
			t.Errorf("applying %q: %v, want %v", code, err, want)
		}
	}
	b.clock.Advance(time.Hour)
	if c, err := b.apply("bob", "later"); err != nil || len(c.PromoCodes) != 1 {
		t.Errorf("applying LATER within its window: %v, %v", c, err)
	}
	b.clock.Advance(time.Hour)
	if c := b.cart(t, "bob"); len(c.PromoCodes) != 0 {
		t.Errorf("after LATER ended the cart still shows %v", c.PromoCodes)
	}
	if _, err := b.apply("bob", "later"); shoptest.Code(err) != connect.CodeFailedPrecondition {
		t.Errorf("applying an expired code: %v, want FailedPrecondition", err)
	}

	// Deactivation takes the discount from every cart holding the code.
	resp, err := b.promos("admin").DeactivatePromoCode(ctx, connect.NewRequest(&cartv1.DeactivatePromoCodeRequest{Code: "Ten"}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Msg.PromoCode.Active || resp.Msg.PromoCode.Redemptions != 0 {
		t.Errorf("DeactivatePromoCode = %v; want inactive, no redemptions", resp.Msg.PromoCode)
	}
	if c := b.cart(t, "alice"); len(c.PromoCodes) != 0 || c.Total.GetAmountMinor() != 10000 {
		t.Errorf("after deactivation Alice's cart = %v; want no discount", c)
	}
	if _, err := b.apply("alice", "TEN"); shoptest.Code(err) != connect.CodeFailedPrecondition {
		t.Errorf("applying a deactivated code: %v, want FailedPrecondition", err)
	}
	if c, err := b.apply("alice", "five-off"); err != nil || c.Discount.GetAmountMinor() != 500 {
		t.Errorf("applying another code after the first was deactivated: %v, %v; want 5.00 off", c, err)
	}
	if _, err := b.promos("admin").DeactivatePromoCode(ctx, connect.NewRequest(&cartv1.DeactivatePromoCodeRequest{Code: "NOPE"})); shoptest.Code(err) != connect.CodeNotFound {
		t.Errorf("deactivating an unknown code: %v, want NotFound", err)
	}
}

// TestCreatePromoCodeValidation sends bad codes and checks the code and
// the field named.
func TestCreatePromoCodeValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.createPromo(t, percentOff("TAKEN", 5, 0))
	end := timestamppb.New(b.clock.Now().Add(time.Hour))
	past := timestamppb.New(b.clock.Now().Add(-time.Hour))
	cases := []struct {
		name  string
		req   *cartv1.CreatePromoCodeRequest
		code  connect.Code
		field string
	}{
		{"taken in another case", &cartv1.CreatePromoCodeRequest{Code: "taken", Discount: &cartv1.CreatePromoCodeRequest_PercentOff{PercentOff: 5}, EndTime: end}, connect.CodeAlreadyExists, ""},
		{"short code", &cartv1.CreatePromoCodeRequest{Code: "AB", Discount: &cartv1.CreatePromoCodeRequest_PercentOff{PercentOff: 5}, EndTime: end}, connect.CodeInvalidArgument, "code"},
		{"no discount", &cartv1.CreatePromoCodeRequest{Code: "NODISC", EndTime: end}, connect.CodeInvalidArgument, "discount"},
		{"0 percent", &cartv1.CreatePromoCodeRequest{Code: "ZERO", Discount: &cartv1.CreatePromoCodeRequest_PercentOff{PercentOff: 0}, EndTime: end}, connect.CodeInvalidArgument, "percent_off"},
		{"101 percent", &cartv1.CreatePromoCodeRequest{Code: "MANY", Discount: &cartv1.CreatePromoCodeRequest_PercentOff{PercentOff: 101}, EndTime: end}, connect.CodeInvalidArgument, "percent_off"},
		{"other currency", &cartv1.CreatePromoCodeRequest{Code: "USD5", Discount: &cartv1.CreatePromoCodeRequest_AmountOff{AmountOff: &typev1.Money{CurrencyCode: "USD", AmountMinor: 500}}, EndTime: end}, connect.CodeInvalidArgument, "amount_off"},
		{"zero amount", &cartv1.CreatePromoCodeRequest{Code: "NOTHING", Discount: &cartv1.CreatePromoCodeRequest_AmountOff{AmountOff: eur(0)}, EndTime: end}, connect.CodeInvalidArgument, "amount_off.amount_minor"},
		{"negative max", &cartv1.CreatePromoCodeRequest{Code: "NEG", Discount: &cartv1.CreatePromoCodeRequest_PercentOff{PercentOff: 5}, MaxRedemptions: -1, EndTime: end}, connect.CodeInvalidArgument, "max_redemptions"},
		{"no end", &cartv1.CreatePromoCodeRequest{Code: "FOREVER", Discount: &cartv1.CreatePromoCodeRequest_PercentOff{PercentOff: 5}}, connect.CodeInvalidArgument, "end_time"},
		{"ended", &cartv1.CreatePromoCodeRequest{Code: "OVER", Discount: &cartv1.CreatePromoCodeRequest_PercentOff{PercentOff: 5}, StartTime: timestamppb.New(past.AsTime().Add(-time.Hour)), EndTime: past}, connect.CodeInvalidArgument, "end_time"},
		{"end before start", &cartv1.CreatePromoCodeRequest{Code: "BACKWARDS", Discount: &cartv1.CreatePromoCodeRequest_PercentOff{PercentOff: 5}, StartTime: end, EndTime: timestamppb.New(end.AsTime().Add(-time.Minute))}, connect.CodeInvalidArgument, "end_time"},
	}
	for _, c := range cases {
		_, err := b.promos("admin").CreatePromoCode(ctx, connect.NewRequest(c.req))
		if shoptest.Code(err) != c.code || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: %v; want %v naming %q", c.name, err, c.code, c.field)
		}
	}
	if n := len(b.listPromos(t)); n != 1 {
		t.Errorf("%d codes exist after the refused creates, want 1", n)
	}
}

// TestListPromoCodesPages walks the codes page by page, newest first.
func TestListPromoCodesPages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	want := []string{"CODE-E", "CODE-D", "CODE-C", "CODE-B", "CODE-A"}
	for i := len(want) - 1; i >= 0; i-- {
		b.createPromo(t, amountOff(want[i], 100))
	}
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		resp, err := b.promos("admin").ListPromoCodes(ctx, connect.NewRequest(&cartv1.ListPromoCodesRequest{PageSize: 2, PageToken: token}))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range resp.Msg.PromoCodes {
			got = append(got, p.Code)
			if p.GetAmountOff().GetAmountMinor() != 100 || !p.Active {
				t.Errorf("listed %v; want an active 1.00-off code", p)
			}
		}
		if token = resp.Msg.NextPageToken; token == "" {
			break
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("listed %v, want %v (newest first)", got, want)
	}
	if _, err := b.promos("admin").ListPromoCodes(ctx, connect.NewRequest(&cartv1.ListPromoCodesRequest{PageToken: "garbage"})); shoptest.Code(err) != connect.CodeInvalidArgument {
		t.Errorf("a garbage page token: %v, want InvalidArgument", err)
	}
}
