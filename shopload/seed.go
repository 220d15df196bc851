package shopload

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	cartv1 "github.com/decoupledshop/shop/gen/proto/shop/cart/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/cart/v1/cartv1connect"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
)

// SeedConfig says how much Seed creates.
type SeedConfig struct {
	// Products in the catalog, spread over Categories categories.
	Products, Categories int
	// Users each get a cart of Lines lines (distinct products).
	Users, Lines int
	// Concurrency of the seeding calls; default 16.
	Concurrency int
}

// Shop is what Seed created, and the clients the load uses.
type Shop struct {
	// ProductIDs are every product's id; CartProductIDs those in a cart.
	ProductIDs, CartProductIDs []string
	// CategoryIDs[i] holds the products whose index is i mod len.
	CategoryIDs []string
	// Users are the shoppers, each with a full cart.
	Users []User
	// AdminAuth is an admin's Authorization header value.
	AdminAuth string
	// SearchWord matches about one product in ten (names and descriptions).
	SearchWord string
	// Clients carry every call (shared connections).
	Clients *Clients
}

// User is a shopper with an access token.
type User struct {
	Name string
	// Auth is the Authorization header value ("Bearer …").
	Auth string
	// Lines are the product ids in the user's cart.
	Lines []string
}

// Clients are the generated Connect clients over one pooled HTTP client.
type Clients struct {
	HTTP         *http.Client
	Products     productv1connect.ProductServiceClient // binary protobuf
	ProductsJSON productv1connect.ProductServiceClient // Connect JSON
	Categories   productv1connect.CategoryServiceClient
	Cart         cartv1connect.CartServiceClient
	// CartNoCache reaches the cache-off replica (nil without one).
	CartNoCache cartv1connect.CartServiceClient
}

// NewHTTPClient returns a client keeping enough idle loopback connections
// for conns concurrent requests (HTTP/1.1, as curl and most clients).
func NewHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        4 * conns,
		MaxIdleConnsPerHost: 2 * conns,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// NewClients builds the clients for a product and a cart URL (noCacheURL
// may be "").
func NewClients(conns int, productURL, cartURL, noCacheURL string) *Clients {
	return NewClientsVia(NewHTTPClient(conns), productURL, cartURL, noCacheURL)
}

// NewClientsVia builds the clients over hc (e.g. one whose transport is a
// Balancer).
func NewClientsVia(hc *http.Client, productURL, cartURL, noCacheURL string) *Clients {
	c := &Clients{
		HTTP:         hc,
		Products:     productv1connect.NewProductServiceClient(hc, productURL),
		ProductsJSON: productv1connect.NewProductServiceClient(hc, productURL, connect.WithProtoJSON()),
		Categories:   productv1connect.NewCategoryServiceClient(hc, productURL),
		Cart:         cartv1connect.NewCartServiceClient(hc, cartURL),
	}
	if noCacheURL != "" {
		c.CartNoCache = cartv1connect.NewCartServiceClient(hc, noCacheURL)
	}
	return c
}

// authed returns req with an Authorization header.
func authed[T any](msg *T, auth string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", auth)
	return req
}

var (
	adjectives = []string{"red", "blue", "green", "black", "white", "grey", "trail", "city", "beach", "winter", "summer", "light", "heavy"}
	nouns      = []string{"runner", "walker", "sandal", "beanie", "tote", "duffel", "jacket", "glove", "scarf", "boot"}
)

// searchWord is a noun every tenth product carries.
const searchWord = "runner"

// Seed creates the catalog through productsvc's API as admin and fills
// each user's cart through cartsvc's API, with tokens from the target's
// issuer.
func Seed(ctx context.Context, tg *Target, cfg SeedConfig, clients *Clients, log io.Writer) (*Shop, error) {
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 16
	}
	if cfg.Categories == 0 {
		cfg.Categories = 10
	}
	admin, err := tg.Token(tg.Admin)
	if err != nil {
		return nil, err
	}
	shop := &Shop{AdminAuth: "Bearer " + admin, SearchWord: searchWord, Clients: clients}
	began := time.Now()
	if err := shop.seedCatalog(ctx, cfg); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "seeded %d products in %s\n", cfg.Products, time.Since(began).Round(time.Millisecond))
	began = time.Now()
	if err := shop.pickLines(tg, cfg); err != nil {
		return nil, err
	}
	if err := shop.fillCarts(ctx, cfg); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "seeded %d carts of %d lines in %s\n", cfg.Users, cfg.Lines, time.Since(began).Round(time.Millisecond))
	// As autovacuum would soon: the planner should see the seeded tables
	// as they are, not as the empty tables they were.
	if tg.Analyze != nil {
		if err := tg.Analyze(ctx); err != nil {
			return nil, err
		}
	}
	return shop, nil
}

// seedCatalog creates the categories, then the products in parallel.
func (shop *Shop) seedCatalog(ctx context.Context, cfg SeedConfig) error {
	for i := range cfg.Categories {
		resp, err := shop.Clients.Categories.CreateCategory(ctx, authed(&productv1.CreateCategoryRequest{
			Name: fmt.Sprintf("Load %d", i), Description: "Products made by shopload",
		}, shop.AdminAuth))
		if err != nil {
			return fmt.Errorf("seed category %d: %w", i, err)
		}
		shop.CategoryIDs = append(shop.CategoryIDs, resp.Msg.Category.Id)
	}
	shop.ProductIDs = make([]string, cfg.Products)
	return parallel(ctx, cfg.Products, cfg.Concurrency, func(ctx context.Context, i int) error {
		adj, noun := adjectives[i%len(adjectives)], nouns[(i/len(adjectives))%len(nouns)]
		resp, err := shop.Clients.Products.CreateProduct(ctx, authed(&productv1.CreateProductRequest{
			Sku:         fmt.Sprintf("LOAD-%06d", i),
			Name:        fmt.Sprintf("%s %s %d", adj, noun, i),
			Description: fmt.Sprintf("A %s %s made for load tests, number %d of the catalog.", adj, noun, i),
			CategoryId:  shop.CategoryIDs[i%len(shop.CategoryIDs)],
			Price:       &typev1.Money{CurrencyCode: "EUR", AmountMinor: 100 + int64(i)},
		}, shop.AdminAuth))
		if err != nil {
			return fmt.Errorf("seed product %d: %w", i, err)
		}
		shop.ProductIDs[i] = resp.Msg.Product.Id
		return nil
	})
}

// pickLines gives each user a token and cfg.Lines distinct products
// (the same ones in every run), and lists the products in some cart.
func (shop *Shop) pickLines(tg *Target, cfg SeedConfig) error {
	inCart := map[string]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	if len(tg.Users) < cfg.Users {
		return fmt.Errorf("%d users wanted, the issuer knows %d", cfg.Users, len(tg.Users))
	}
	shop.Users = make([]User, cfg.Users)
	for u := range shop.Users {
		token, err := tg.Token(tg.Users[u])
		if err != nil {
			return err
		}
		picked := map[int]bool{}
		var lines []string
		for len(lines) < min(cfg.Lines, cfg.Products) {
			if i := rng.IntN(cfg.Products); !picked[i] {
				picked[i] = true
				lines = append(lines, shop.ProductIDs[i])
				inCart[shop.ProductIDs[i]] = true
			}
		}
		shop.Users[u] = User{Name: tg.Users[u], Auth: "Bearer " + token, Lines: lines}
	}
	for id := range inCart {
		shop.CartProductIDs = append(shop.CartProductIDs, id)
	}
	return nil
}

// fillCarts adds each user's lines to their cart, users in parallel.
func (shop *Shop) fillCarts(ctx context.Context, cfg SeedConfig) error {
	return parallel(ctx, cfg.Users, cfg.Concurrency, func(ctx context.Context, u int) error {
		user := shop.Users[u]
		for _, id := range user.Lines {
			if _, err := shop.Clients.Cart.AddCartItem(ctx, authed(&cartv1.AddCartItemRequest{ProductId: id, Quantity: 1}, user.Auth)); err != nil {
				return fmt.Errorf("seed %s's cart: %w", user.Name, err)
			}
		}
		return nil
	})
}

// parallel calls f(ctx, i) for i in [0, n) on conc goroutines and returns
// the first error (the others stop then).
func parallel(ctx context.Context, n, conc int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx) // nil unless f or the parent failed
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
