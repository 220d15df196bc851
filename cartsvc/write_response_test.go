package cartsvc_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/internal/shoptest"
)

func addTo(t *testing.T, c cartv1connect.CartServiceClient, p *productv1.Product, quantity int32) *cartv1.Cart {
	t.Helper()
	resp, err := c.AddCartItem(context.Background(), connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: p.Id, Quantity: quantity}))
	if err != nil {
		t.Fatalf("AddCartItem(%s): %v", p.Name, err)
	}
	return resp.Msg.Cart
}

// TestAddToALineAnswersWithoutReadingTheCartAgain: adding to a line the
// cart has answers the cart read before the write with the line as
// written, one statement fewer than an add of a new line (which reads the
// cart again); both answers are what a GetCart then reads.
func TestAddToALineAnswersWithoutReadingTheCartAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p1, p2, p3 := b.createProduct(t, "Kettle", 2500), b.createProduct(t, "Mug", 800), b.createProduct(t, "Teapot", 3100)
	b.add(t, shoptest.Alice, p1, 1)
	b.add(t, shoptest.Alice, p2, 2)
	statements, url := b.countingCart(t)
	c := cartv1connect.NewCartServiceClient(shoptest.Protocols()[1].Client, url, shoptest.Protocols()[1].ClientOptions(b.tokens[shoptest.Alice])...)

	before := statements.Load()
	added := addTo(t, c, p3, 1) // a new line
	newLine := statements.Load() - before
	if got := b.cart(t, shoptest.Alice); !proto.Equal(added, got) {
		t.Fatalf("answer of a new line's add %v; GetCart then %v", added, got)
	}
	b.setPrice(t, p2, 900) // the add fetches p2 live: its line's snapshot and added price change
	before = statements.Load()
	added = addTo(t, c, p2, 3)
	toLine := statements.Load() - before
	if got := b.cart(t, shoptest.Alice); !proto.Equal(added, got) {
		t.Fatalf("answer of an add to a line %v; GetCart then %v", added, got)
	}
	if it := added.Items[1]; it.Quantity != 5 || it.UnitPrice.AmountMinor != 900 || it.AddedUnitPrice.AmountMinor != 900 {
		t.Fatalf("line after the add = %v; want quantity 5 at 900", it)
	}
	t.Logf("statements: %d adding a new line, %d adding to a line", newLine, toLine)
	if toLine != newLine-1 {
		t.Fatalf("an add to a line sent %d statements, a new line's add %d; want one fewer (no second read of the cart)", toLine, newLine)
	}
}

// TestAddAfterAConcurrentWriteReadsTheCartAgain: when another write of the
// cart commits between the add's first read and its lock, the answer shows
// that write too.
func TestAddAfterAConcurrentWriteReadsTheCartAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, withWritesInFlight(2))
	p1, p2 := b.createProduct(t, "Kettle", 2500), b.createProduct(t, "Mug", 800)
	b.add(t, shoptest.Alice, p1, 1)
	b.add(t, shoptest.Alice, p2, 1)
	b.products.Hold() // the add's live fetch of p1 waits, after its first read
	done := make(chan *cartv1.Cart, 1)
	go func() { done <- addTo(t, b.carts(shoptest.Alice), p1, 1) }()
	eventually(t, "the add waiting for productsvc", func() bool { return b.products.Held() > 0 })
	if _, err := b.carts(shoptest.Alice).UpdateCartItem(context.Background(), connect.NewRequest(&cartv1.UpdateCartItemRequest{ProductId: p2.Id, Quantity: 7})); err != nil {
		t.Fatal(err)
	}
	b.products.Release()
	added := <-done
	if got := map[string]int32{added.Items[0].ProductId: added.Items[0].Quantity, added.Items[1].ProductId: added.Items[1].Quantity}; got[p1.Id] != 2 || got[p2.Id] != 7 {
		t.Fatalf("answer of the add = %v; want %s: 2 and %s: 7 (the concurrent update)", got, p1.Id, p2.Id)
	}
}
