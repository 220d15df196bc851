package input

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/internal/shoperr"
)

func TestUUID(t *testing.T) {
	t.Parallel()
	if id, err := UUID("id", "123e4567-e89b-12d3-a456-426614174000"); err != nil || id.String() != "123e4567-e89b-12d3-a456-426614174000" {
		t.Fatalf("canonical UUID: %v, %v", id, err)
	}
	for _, bad := range []string{"", "x", "{123e4567-e89b-12d3-a456-426614174000}", "123e4567e89b12d3a456426614174000", "urn:uuid:123e4567-e89b-12d3-a456-426614174000"} {
		_, err := UUID("product_id", bad)
		var se *shoperr.Error
		if !errors.As(err, &se) || se.Code != shoperr.CodeInvalid || se.Field != "product_id" {
			t.Errorf("UUID(%q) = %v, want Invalid naming product_id", bad, err)
		}
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	id := "order-1"
	req := &cartv1.AddCartItemRequest{ProductId: "a", Quantity: 1, RequestId: &id}
	a, err := Fingerprint("/shop.X/Do", id, req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Fingerprint("/shop.X/Do", "another-id", req)
	if !bytes.Equal(a, b) {
		t.Error("the request_id changed the fingerprint; only the request should")
	}
	c, _ := Fingerprint("/shop.X/Other", id, req)
	d, _ := Fingerprint("/shop.X/Do", id, &cartv1.AddCartItemRequest{ProductId: "b", Quantity: 1, RequestId: &id})
	if bytes.Equal(a, c) || bytes.Equal(a, d) {
		t.Error("a different procedure or request gave the same fingerprint")
	}
	for _, bad := range []string{"", strings.Repeat("x", MaxRequestID+1), "a\x00b", "tab\there"} {
		_, err := Fingerprint("/shop.X/Do", bad, req)
		var se *shoperr.Error
		if !errors.As(err, &se) || se.Code != shoperr.CodeInvalid || se.Field != "request_id" {
			t.Errorf("Fingerprint(request_id %q) = %v, want Invalid naming request_id", bad, err)
		}
	}
}
