// Command goclient shows the shop's generated Go clients in use: it gets an
// access token from the dev issuer (password grant, development only),
// searches the catalog anonymously, adds the first hit to the user's cart
// with an auth interceptor, and prints the cart. Every call is retried
// while the service answers Unavailable (a replica restarting, the database
// failing over), with the same request, so the cart write keeps its
// request_id and applies once.
//
//	go run ./examples/goclient --user alice --query runner
//
// Start the stack first: go run ./cmd/shopdev.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "goclient:", err)
		os.Exit(1)
	}
}

func run() error {
	issuer := flag.String("issuer-url", "http://127.0.0.1:8090", "dev issuer")
	products := flag.String("products-url", "http://127.0.0.1:8081", "productsvc")
	carts := flag.String("cart-url", "http://127.0.0.1:8082", "cartsvc")
	user := flag.String("user", "alice", "demo user (password = name)")
	query := flag.String("query", "runner", "what to search for")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Catalog reads are public: no token, and HTTP GET (cacheable).
	retry := connect.WithInterceptors(retryUnavailable(5, 100*time.Millisecond))
	catalog := productv1connect.NewProductServiceClient(http.DefaultClient, *products, connect.WithHTTPGet(), retry)
	found, err := catalog.ListProducts(ctx, connect.NewRequest(&productv1.ListProductsRequest{Query: query, PageSize: 5}))
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	if len(found.Msg.Products) == 0 {
		return fmt.Errorf("no product matches %q", *query)
	}
	p := found.Msg.Products[0]
	fmt.Printf("found %s (%s) at %d %s\n", p.Name, p.Sku, p.Price.AmountMinor, p.Price.CurrencyCode)

	// Cart calls carry the user's access token.
	token, err := passwordToken(ctx, *issuer, *user)
	if err != nil {
		return err
	}
	cart := cartv1connect.NewCartServiceClient(http.DefaultClient, *carts, retry, connect.WithInterceptors(bearer(token)))
	requestID := fmt.Sprintf("goclient-%d", time.Now().UnixNano()) // lets the call be retried safely
	added, err := cart.AddCartItem(ctx, connect.NewRequest(&cartv1.AddCartItemRequest{ProductId: p.Id, Quantity: 1, RequestId: &requestID}))
	if err != nil {
		var ce *connect.Error
		if errors.As(err, &ce) {
			return fmt.Errorf("add to cart: %s: %s", ce.Code(), ce.Message())
		}
		return err
	}
	for _, item := range added.Msg.Cart.Items {
		fmt.Printf("cart: %d × %s = %d\n", item.Quantity, item.Name, item.LineTotal.GetAmountMinor())
	}
	fmt.Printf("cart total: %d %s\n", added.Msg.Cart.Total.GetAmountMinor(), added.Msg.Cart.Total.GetCurrencyCode())
	return nil
}

// bearer is a client interceptor that sends the access token.
func bearer(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}
}

// retryUnavailable is a client interceptor that sends a unary call again,
// unchanged, while it fails with Unavailable: up to attempts in all, after
// a random wait below base, 2·base, 4·base…, and never past the call's
// context. Only Unavailable is retried: the service says nothing was done,
// or (a commit whose outcome is unknown) that a retry with the same
// request_id is safe. A write without a request_id should not use it.
func retryUnavailable(attempts int, base time.Duration) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			wait := base
			for attempt := 1; ; attempt++ {
				resp, err := next(ctx, req)
				if err == nil || connect.CodeOf(err) != connect.CodeUnavailable || attempt >= attempts {
					return resp, err
				}
				t := time.NewTimer(rand.N(wait) + 1)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil, err
				case <-t.C:
				}
				wait *= 2
			}
		}
	}
}

// passwordToken gets a user's access token with the OAuth 2 password grant,
// which only the dev issuer offers; real clients use the authorization code
// flow (users) or client credentials (services).
func passwordToken(ctx context.Context, issuer, user string) (string, error) {
	form := url.Values{"grant_type": {"password"}, "client_id": {"shop-web"}, "username": {user}, "password": {user}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(issuer, "/")+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("token: %w (is go run ./cmd/shopdev running?)", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		return "", fmt.Errorf("token: the issuer answered HTTP %d without a token", resp.StatusCode)
	}
	return body.AccessToken, nil
}
