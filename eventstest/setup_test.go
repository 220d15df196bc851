package eventstest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	typev1 "github.com/decoupledshop/shop/gen/proto/shop/type/v1"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/clientcreds"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/server"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
	"github.com/decoupledshop/shop/productsvc/relay"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// long skips t unless SHOP_LONG=1 asks for the long tests.
func long(t *testing.T) {
	t.Helper()
	if os.Getenv("SHOP_LONG") != "1" {
		t.Skip("a long test: set SHOP_LONG=1 to run it")
	}
}

// shop is a real productsvc whose catalog writes the outbox for the given
// subscribers, with a real issuer; cartsvc replicas and relays are added
// by the tests.
type shop struct {
	iss         *devissuer.Issuer
	verifier    *auth.Verifier
	admin       string // an admin's access token
	productURL  string
	productPool *pgxpool.Pool
	productDB   string
	catalog     *productsvc.Store
	products    productv1connect.ProductServiceClient
	categories  productv1connect.CategoryServiceClient
}

func newShop(t *testing.T, subscribers ...string) *shop {
	t.Helper()
	iss := shoptest.Issuer(t)
	s := &shop{iss: iss, verifier: shoptest.Verifier(t, iss), admin: issuertest.UserToken(t, iss, shoptest.Admin)}
	s.productPool, s.productDB = pgtest.NewPool(t, pgtest.ProductSchema)
	s.catalog = productsvc.NewStore(s.productPool, rollbackPublisher{productsvc.NewOutbox(subscribers, nil, nil)}, "EUR", nil, nil)
	cfg := shoptest.ServerConfig(t, s.productPool.Ping)
	srv := server.New(cfg)
	productsvc.Mount(srv, server.HandlerOptions(cfg), s.verifier, s.catalog)
	s.productURL = shoptest.Serve(t, srv)
	s.dial()
	return s
}

// shopAt is a shop whose productsvc runs elsewhere: at productURL, on the
// database at productDB, trusting iss.
func shopAt(t *testing.T, iss *devissuer.Issuer, productURL, productDB string) *shop {
	t.Helper()
	s := &shop{iss: iss, admin: issuertest.UserToken(t, iss, shoptest.Admin), productURL: productURL, productDB: productDB}
	s.productPool = openPool(t, productDB)
	s.dial()
	return s
}

// dial makes the admin's clients of productsvc.
func (s *shop) dial() {
	s.products = productv1connect.NewProductServiceClient(shoptest.HTTPClient(), s.productURL, connect.WithInterceptors(shoptest.Bearer(s.admin)))
	s.categories = productv1connect.NewCategoryServiceClient(shoptest.HTTPClient(), s.productURL, connect.WithInterceptors(shoptest.Bearer(s.admin)))
}

// openPool opens a pool on dbURL until the test ends.
func openPool(t *testing.T, dbURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// rollBack marks a context: the change's transaction writes its events,
// then fails, so the change and its events roll back.
type rollBack struct{}

// rollbackPublisher is productsvc's outbox, plus a failing statement after
// a product change's events when the context carries rollBack.
type rollbackPublisher struct{ *productsvc.Outbox }

func (p rollbackPublisher) ProductsChanged(ctx context.Context, tx pgx.Tx, products []productdb.Product) error {
	if err := p.Outbox.ProductsChanged(ctx, tx, products); err != nil {
		return err
	}
	if ctx.Value(rollBack{}) != nil {
		_, err := tx.Exec(ctx, "SELECT 1 / 0") // aborts the transaction
		return err
	}
	return nil
}

// background runs f until the test ends.
func background(t *testing.T, f func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// relayTokens is the relay's client-credentials source.
func (s *shop) relayTokens() *clientcreds.Source {
	return clientcreds.New(clientcreds.Config{
		TokenURL: s.iss.URL() + devissuer.TokenPath, ClientID: devissuer.DemoRelayClient,
		ClientSecret: devissuer.DemoRelaySecret, Scopes: []string{auth.DefaultServiceScope},
	})
}

// startRelay runs productsvc's relay with cfg (tokens and the LISTEN URL
// filled in) until the test ends.
func (s *shop) startRelay(t *testing.T, cfg relay.Config) {
	t.Helper()
	cfg.Tokens = s.relayTokens()
	cfg.ListenURL = s.productDB
	r, err := relay.New(s.productPool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	background(t, func(ctx context.Context) { _ = r.Run(ctx) })
}

// waitDrained waits until productsvc's outbox is empty.
func (s *shop) waitDrained(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		var n int
		if err := s.productPool.QueryRow(context.Background(), "SELECT count(*) FROM outbox").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return time.Since(began)
		}
		if time.Since(began) > timeout {
			t.Fatalf("%d events still in the outbox after %s", n, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *shop) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := s.productPool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func eur(amount int64) *typev1.Money { return &typev1.Money{CurrencyCode: "EUR", AmountMinor: amount} }

func (s *shop) createCategory(t *testing.T, name string) *productv1.Category {
	t.Helper()
	resp, err := s.categories.CreateCategory(context.Background(), connect.NewRequest(&productv1.CreateCategoryRequest{Name: name}))
	if err != nil {
		t.Fatalf("CreateCategory: %v", err)
	}
	return resp.Msg.Category
}

func (s *shop) createProduct(t *testing.T, categoryID, sku, name string, price int64) *productv1.Product {
	t.Helper()
	resp, err := s.products.CreateProduct(context.Background(), connect.NewRequest(&productv1.CreateProductRequest{
		Sku: sku, Name: name, CategoryId: categoryID, Price: eur(price),
	}))
	if err != nil {
		t.Fatalf("CreateProduct(%s): %v", sku, err)
	}
	return resp.Msg.Product
}

func (s *shop) setPrice(t *testing.T, id string, price int64) *productv1.Product {
	t.Helper()
	resp, err := s.products.UpdateProduct(context.Background(), connect.NewRequest(&productv1.UpdateProductRequest{
		Product: &productv1.Product{Id: id, Price: eur(price)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
	}))
	if err != nil {
		t.Fatalf("UpdateProduct(%s): %v", id, err)
	}
	return resp.Msg.Product
}

func (s *shop) rename(t *testing.T, id, name string) {
	t.Helper()
	_, err := s.products.UpdateProduct(context.Background(), connect.NewRequest(&productv1.UpdateProductRequest{
		Product: &productv1.Product{Id: id, Name: name}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
	}))
	if err != nil {
		t.Fatalf("UpdateProduct(%s): %v", id, err)
	}
}

func (s *shop) deleteProduct(t *testing.T, id string) {
	t.Helper()
	if _, err := s.products.DeleteProduct(context.Background(), connect.NewRequest(&productv1.DeleteProductRequest{Id: id})); err != nil {
		t.Fatalf("DeleteProduct(%s): %v", id, err)
	}
}

func (s *shop) renameCategory(t *testing.T, id, name string) {
	t.Helper()
	_, err := s.categories.UpdateCategory(context.Background(), connect.NewRequest(&productv1.UpdateCategoryRequest{
		Category: &productv1.Category{Id: id, Name: name}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
	}))
	if err != nil {
		t.Fatalf("UpdateCategory(%s): %v", id, err)
	}
}

// userToken is a user's access token.
func (s *shop) userToken(t *testing.T, user string) string {
	t.Helper()
	return issuertest.UserToken(t, s.iss, user)
}

// outboxEvents returns the subscriber's queued events in the order they
// happened.
func (s *shop) outboxEvents(t *testing.T, subscriber string) []*eventsv1.Event {
	t.Helper()
	rows, err := s.productPool.Query(context.Background(),
		`SELECT event FROM outbox WHERE subscriber = $1 ORDER BY occurred_at, aggregate_version, event_id`, subscriber)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	events := make([]*eventsv1.Event, len(raw))
	for i, r := range raw {
		events[i] = new(eventsv1.Event)
		if err := proto.Unmarshal(r, events[i]); err != nil {
			t.Fatal(err)
		}
	}
	return events
}

// productChangedEvent is a ProductChanged event made by hand, as
// productsvc's outbox would make it.
func productChangedEvent(id uuid.UUID, version int64, name string, price int64) *eventsv1.Event {
	return &eventsv1.Event{
		Id: uuid.NewString(), Type: "shop.events.v1.ProductChanged", AggregateId: id.String(), AggregateVersion: version,
		OccurredAt: timestamppb.Now(),
		Payload: &eventsv1.Event_ProductChanged{ProductChanged: &eventsv1.ProductChanged{
			Id: id.String(), Sku: "SKU-1", Name: name, CategoryId: uuid.NewString(), CategoryName: "Things",
			Price: eur(price), Version: version, UpdateTime: timestamppb.Now(),
		}},
	}
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
