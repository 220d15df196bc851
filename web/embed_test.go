package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/decoupledshop/shop/web"
)

func TestHandlerServesPageAndConfig(t *testing.T) {
	t.Parallel()
	cfg := web.Config{IssuerURL: "http://127.0.0.1:8090", ProductsURL: "http://127.0.0.1:8081", CartURL: "http://127.0.0.1:8082", ClientID: "shop-web"}
	srv := httptest.NewServer(web.Handler(cfg))
	t.Cleanup(srv.Close)

	get := func(path string) (*http.Response, string) {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(body)
	}

	res, body := get("/")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `src="app.js"`) || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: status %d type %q, want the page loading app.js:\n%s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	if res.Header.Get("Referrer-Policy") != "no-referrer" || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("GET / headers %v, want Referrer-Policy no-referrer and X-Frame-Options DENY", res.Header)
	}
	for _, file := range []string{"/app.js", "/style.css"} {
		if res, body := get(file); res.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: status %d, %d bytes; want the built file", file, res.StatusCode, len(body))
		}
	}

	res, body = get("/config.json")
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /config.json: status %d body %q (%v)", res.StatusCode, body, err)
	}
	want := map[string]any{"issuerUrl": cfg.IssuerURL, "productsUrl": cfg.ProductsURL, "cartUrl": cfg.CartURL, "clientId": "shop-web"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("config.json %s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("config.json = %v, want exactly %v (empty optional fields left out)", got, want)
	}

	if res, _ := get("/nope.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope.js: status %d, want 404", res.StatusCode)
	}
}
