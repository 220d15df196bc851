// Package web is the storefront: a small TypeScript page (sources in src/,
// built by `npm run build` into dist/, which is committed) served with the
// runtime configuration it reads from config.json. Go programs serve it
// with Handler and need no Node.
package web

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
)

//go:embed dist
var dist embed.FS

// Dist returns the built storefront: index.html, app.js and style.css at
// its root.
func Dist() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is embedded above; cannot happen
	}
	return sub
}

// Config is what the page reads from config.json next to it. The URLs are
// bases without a trailing slash, e.g. "http://127.0.0.1:8081".
type Config struct {
	// IssuerURL is the OIDC issuer the page logs in with (authorization
	// code + PKCE). The page's own URL, without query, is the redirect URI,
	// so it must be a loopback http URL for the dev issuer.
	IssuerURL string `json:"issuerUrl"`
	// ProductsURL is productsvc; it must allow the page's origin (CORS).
	ProductsURL string `json:"productsUrl"`
	// CartURL is cartsvc; it must allow the page's origin (CORS).
	CartURL string `json:"cartUrl"`
	// ClientID is the public OAuth client, devissuer.WebClientID ("shop-web").
	ClientID string `json:"clientId"`
	// Currency is the shop currency for the price filter; empty means EUR.
	Currency string `json:"currency,omitempty"`
	// CartPollSeconds is how often the page refreshes the cart while
	// visible; 0 means the page's default (5).
	CartPollSeconds int `json:"cartPollSeconds,omitempty"`
}

// Handler serves the storefront at the root of its mount point: the files
// of Dist and GET /config.json with cfg. Responses are never cached (the
// page is rebuilt during development) and carry headers that keep the
// page out of frames and keep the login code out of Referer headers.
func Handler(cfg Config) http.Handler {
	configJSON, _ := json.Marshal(cfg) // strings and ints: cannot fail
	files := http.FileServerFS(Dist())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(configJSON)
	})
	mux.Handle("GET /", files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		mux.ServeHTTP(w, r)
	})
}
