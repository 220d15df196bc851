package eventstest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/decoupledshop/shop/cartsvc"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
)

// TestBothServicesOverJSON runs the real productsvc and cartsvc mains
// (configured through the environment) and walks the "done means"
// with plain JSON over HTTP, as curl would: a user fills a cart; with
// productsvc stopped GetCart still answers (stale) and AddCartItem fails
// with Unavailable; a second user sees nothing of the first's cart.
func TestBothServicesOverJSON(t *testing.T) {
	t.Parallel()
	iss := shoptest.Issuer(t)
	productAddr, cartAddr := shoptest.FreeAddr(t), shoptest.FreeAddr(t)
	productEnv := map[string]string{
		"ADDR": productAddr, "DATABASE_URL": pgtest.NewDatabase(t, pgtest.ProductSchema),
		"OIDC_ISSUER_URL": iss.URL(), "DRAIN_DELAY": "-1s", "ADMIN_ADDR": "127.0.0.1:0",
	}
	cartEnv := map[string]string{
		"ADDR": cartAddr, "DATABASE_URL": pgtest.NewDatabase(t, pgtest.CartSchema),
		"OIDC_ISSUER_URL": iss.URL(), "DRAIN_DELAY": "-1s", "ADMIN_ADDR": "127.0.0.1:0", "PRODUCT_URL": "http://" + productAddr,
		// Every GetCart asks productsvc (within the TTL the cache answers
		// without asking, and is not stale).
		"PRODUCT_CACHE_TTL": "1ns",
	}
	stopProducts := runMain(t, productsvc.Run, productEnv)
	runMain(t, cartsvc.Run, cartEnv)

	admin := issuertest.UserToken(t, iss, shoptest.Admin)
	alice, bob := issuertest.UserToken(t, iss, shoptest.Alice), issuertest.UserToken(t, iss, shoptest.Bob)
	post := func(base, procedure, token, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+base+procedure, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", procedure, err)
		}
		defer resp.Body.Close()
		var out map[string]any
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("POST %s: %d %s: %v", procedure, resp.StatusCode, raw, err)
		}
		return resp.StatusCode, out
	}
	field := func(m map[string]any, path ...string) any {
		var v any = m
		for _, p := range path {
			mm, _ := v.(map[string]any)
			v = mm[p]
		}
		return v
	}

	_, cat := post(productAddr, "/shop.product.v1.CategoryService/CreateCategory", admin, `{"name":"Garden"}`)
	categoryID, _ := field(cat, "category", "id").(string)
	_, prod := post(productAddr, "/shop.product.v1.ProductService/CreateProduct", admin,
		`{"sku":"SPADE-1","name":"Spade","categoryId":"`+categoryID+`","price":{"currencyCode":"EUR","amountMinor":"2450"}}`)
	productID, _ := field(prod, "product", "id").(string)
	if productID == "" {
		t.Fatalf("CreateProduct answered %v", prod)
	}
	status, added := post(cartAddr, "/shop.cart.v1.CartService/AddCartItem", alice, `{"productId":"`+productID+`","quantity":2}`)
	if status != http.StatusOK || field(added, "cart", "total", "amountMinor") != "4900" {
		t.Fatalf("AddCartItem = %d %v; want 200 with total 4900", status, added)
	}

	stopProducts()
	status, got := post(cartAddr, "/shop.cart.v1.CartService/GetCart", alice, `{}`)
	if status != http.StatusOK || field(got, "cart", "stale") != true || field(got, "cart", "total", "amountMinor") != "4900" {
		t.Errorf("GetCart with productsvc stopped = %d %v; want 200, stale, total 4900", status, got)
	}
	status, refused := post(cartAddr, "/shop.cart.v1.CartService/AddCartItem", alice, `{"productId":"`+productID+`","quantity":1}`)
	if status != http.StatusServiceUnavailable || refused["code"] != "unavailable" {
		t.Errorf("AddCartItem with productsvc stopped = %d %v; want 503 unavailable", status, refused)
	}
	status, other := post(cartAddr, "/shop.cart.v1.CartService/GetCart", bob, `{}`)
	if status != http.StatusOK || field(other, "cart", "items") != nil || field(other, "cart", "total", "amountMinor") != nil {
		t.Errorf("Bob's GetCart = %d %v; want an empty cart", status, other)
	}
}
