package productsvc_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/events/v1/eventsv1connect"
	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/clientcreds"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/server"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/internal/telemetry"
	"github.com/decoupledshop/shop/productsvc"
	"github.com/decoupledshop/shop/productsvc/relay"
	"github.com/decoupledshop/shop/productsvc/relay/sinktest"
)

// eventsBundle is a productsvc on loopback whose catalog writes the real
// outbox for one subscriber, "cartsvc", played by a real EventSinkService.
type eventsBundle struct {
	url     string
	dbURL   string
	pool    *pgxpool.Pool
	iss     *devissuer.Issuer
	sink    *sinktest.Sink
	catalog *productsvc.Store
	admin   string // an admin's access token
}

func eventsSetup(t testing.TB) *eventsBundle {
	t.Helper()
	pool, dbURL := pgtest.NewPool(t, productSchema)
	iss := shoptest.Issuer(t)
	b := &eventsBundle{
		dbURL: dbURL, pool: pool, iss: iss,
		sink:  sinktest.Start(t, iss),
		admin: issuertest.UserToken(t, iss, shoptest.Admin),
	}
	outbox := productsvc.NewOutbox([]string{"cartsvc"}, nil, nil)
	b.catalog = productsvc.NewStore(pool, failingPublisher{outbox}, "EUR", nil, nil)
	cfg := shoptest.ServerConfig(t, pool.Ping)
	srv := server.New(cfg)
	opts := append(telemetry.ForTest("productsvc", nil, nil).HandlerOptions(), server.HandlerOptions(cfg)...)
	productsvc.Mount(srv, opts, shoptest.Verifier(t, iss), b.catalog)
	b.url = shoptest.Serve(t, srv)
	return b
}

// startRelay runs a relay like productsvc's (LISTEN/NOTIFY, client
// credentials from the issuer) until the test ends.
func (b *eventsBundle) startRelay(t testing.TB) {
	t.Helper()
	r, err := relay.New(b.pool, relay.Config{
		Subscribers: []relay.Subscriber{{Name: "cartsvc", URL: b.sink.URL()}},
		Tokens: clientcreds.New(clientcreds.Config{
			TokenURL: b.iss.URL() + devissuer.TokenPath, ClientID: shoptest.EventsClient,
			ClientSecret: devissuer.DemoRelaySecret, Scopes: []string{auth.DefaultServiceScope},
		}),
		ListenURL: b.dbURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func (b *eventsBundle) deadLetters(token string) eventsv1connect.DeadLetterServiceClient {
	p := shoptest.ConnectJSON()
	return eventsv1connect.NewDeadLetterServiceClient(p.Client, b.url, p.ClientOptions(token)...)
}

// queued returns the events in the outbox, oldest first.
func (b *eventsBundle) queued(t *testing.T) []*eventsv1.Event {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT event FROM outbox ORDER BY occurred_at, aggregate_version, type`)
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

// failAfterOutbox marks a context: the publisher writes the outbox rows,
// then makes the transaction fail, so the change and its events roll back.
type failAfterOutbox struct{}

// failingPublisher is the real outbox, plus a deliberately failing
// statement after the insert when the context asks for it.
type failingPublisher struct{ *productsvc.Outbox }

func (p failingPublisher) fail(ctx context.Context, tx pgx.Tx) error {
	if ctx.Value(failAfterOutbox{}) == nil {
		return nil
	}
	_, err := tx.Exec(ctx, "SELECT 1 / 0") // division_by_zero aborts the transaction
	return err
}

func (p failingPublisher) ProductsChanged(ctx context.Context, tx pgx.Tx, products []productdb.Product) error {
	if err := p.Outbox.ProductsChanged(ctx, tx, products); err != nil {
		return err
	}
	return p.fail(ctx, tx)
}

func TestEveryProcedureIsClassifiedWithDeadLetters(t *testing.T) {
	t.Parallel()
	procs := auth.Procedures(
		productv1.File_shop_product_v1_category_proto.Services().ByName("CategoryService"),
		productv1.File_shop_product_v1_product_proto.Services().ByName("ProductService"),
		eventsv1.File_shop_events_v1_dead_letter_proto.Services().ByName("DeadLetterService"),
	)
	if len(procs) != 14 {
		t.Fatalf("found %d procedures, want 14", len(procs))
	}
	if err := productsvc.Rules.Check(procs); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs[11:] {
		if productsvc.Rules[p] != auth.Admin {
			t.Errorf("%s is %v, want admin", p, productsvc.Rules[p])
		}
	}
}

func TestEveryChangeQueuesItsEventsWithTheRequestTrace(t *testing.T) {
	t.Parallel()
	b := eventsSetup(t)
	ctx := context.Background()
	const trace, traceID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"
	p := shoptest.ConnectJSON()
	opts := append(p.ClientOptions(b.admin), connect.WithInterceptors(connect.UnaryInterceptorFunc(
		func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("traceparent", trace)
				return next(ctx, req)
			}
		})))
	cats := productv1connect.NewCategoryServiceClient(p.Client, b.url, opts...)
	prods := productv1connect.NewProductServiceClient(p.Client, b.url, opts...)

	cat, err := cats.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: "Shoes"}))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		resp, err := prods.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
			Sku: fmt.Sprintf("RUN-%d", i), Name: "Runner", CategoryId: cat.Msg.Category.Id, Price: eur(4999),
		}))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, resp.Msg.Product.Id)
	}
	if _, err := prods.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{
		Product:    &productv1.Product{Id: ids[0], Price: eur(3999)},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"price"}},
	})); err != nil {
		t.Fatal(err)
	}
	if _, err := cats.UpdateCategory(ctx, connect.NewRequest(&productv1.UpdateCategoryRequest{
		Category:   &productv1.Category{Id: cat.Msg.Category.Id, Name: "Footwear"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
	})); err != nil {
		t.Fatal(err)
	}
	if _, err := prods.DeleteProduct(ctx, connect.NewRequest(&productv1.DeleteProductRequest{Id: ids[2]})); err != nil {
		t.Fatal(err)
	}
	// A refused change queues nothing.
	if _, err := prods.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
		Sku: "RUN-0", Name: "Duplicate", CategoryId: cat.Msg.Category.Id, Price: eur(1),
	})); shoptest.Code(err) != connect.CodeAlreadyExists {
		t.Fatalf("duplicate SKU: %v, want AlreadyExists", err)
	}

	var got []string
	for _, ev := range b.queued(t) {
		// The request's server span is the stored parent: same trace id.
		if got := telemetry.SpanContextOf(ev.GetTraceparent()).TraceID().String(); got != traceID {
			t.Errorf("event %s has traceparent %q, want one in the request's trace %s", ev.GetType(), ev.GetTraceparent(), traceID)
		}
		got = append(got, fmt.Sprintf("%s %s v%d", strings.TrimPrefix(ev.GetType(), "shop.events.v1."), short(ev.GetAggregateId(), cat.Msg.Category.Id, ids), ev.GetAggregateVersion()))
	}
	want := []string{
		"CategoryChanged cat v1",
		"ProductChanged p0 v1", "ProductChanged p1 v1", "ProductChanged p2 v1",
		"ProductChanged p0 v2",
		"CategoryChanged cat v2", "ProductChanged p0 v3", "ProductChanged p1 v2", "ProductChanged p2 v2",
		"ProductDeleted p2 v3",
	}
	// The rename's ProductChanged events share one instant: any order.
	if len(got) == len(want) {
		slices.Sort(got[6:9])
		slices.Sort(want[6:9])
	}
	if !slices.Equal(got, want) {
		t.Fatalf("queued events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var renamed *eventsv1.ProductChanged
	for _, ev := range b.queued(t) {
		if ev.GetAggregateId() == ids[0] && ev.GetAggregateVersion() == 3 {
			renamed = ev.GetProductChanged()
		}
	}
	if renamed.GetCategoryName() != "Footwear" || renamed.GetPrice().GetAmountMinor() != 3999 || renamed.GetSku() != "RUN-0" {
		t.Fatalf("ProductChanged after the rename = %v; want the full state (Footwear, 3999, RUN-0)", renamed)
	}
}

// short names an aggregate id for the expectations.
func short(id, category string, products []string) string {
	if id == category {
		return "cat"
	}
	for i, p := range products {
		if id == p {
			return fmt.Sprintf("p%d", i)
		}
	}
	return id
}

func TestRolledBackChangesPublishNothing(t *testing.T) {
	t.Parallel()
	b := eventsSetup(t)
	b.startRelay(t)
	ctx := adminContext()
	categories := &productsvc.CategoryServer{Store: b.catalog}
	products := &productsvc.ProductServer{Store: b.catalog}

	cat, err := categories.CreateCategory(ctx, connect.NewRequest(&productv1.CreateCategoryRequest{Name: "Things"}))
	if err != nil {
		t.Fatal(err)
	}
	const nProducts, updates = 100, 1000
	ids := make([]string, nProducts)
	for i := range ids {
		resp, err := products.CreateProduct(ctx, connect.NewRequest(&productv1.CreateProductRequest{
			Sku: fmt.Sprintf("SKU-%d", i), Name: "new", CategoryId: cat.Msg.Category.Id, Price: eur(100),
		}))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = resp.Msg.Product.Id
	}

	// Each product gets ten updates in a row; every tenth update (one per
	// product) writes its outbox row, then its transaction fails.
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, updates)
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				ctx := ctx
				if i%10 == 3 {
					ctx = context.WithValue(ctx, failAfterOutbox{}, true)
				}
				_, errs[i] = products.UpdateProduct(ctx, connect.NewRequest(&productv1.UpdateProductRequest{
					Product:    &productv1.Product{Id: ids[i/(updates/nProducts)], Name: fmt.Sprintf("update %d", i)},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
				}))
			}
		})
	}
	for i := range updates {
		work <- i
	}
	close(work)
	wg.Wait()
	for i, err := range errs {
		var pgErr interface{ SQLState() string }
		if i%10 == 3 {
			if !errors.As(err, &pgErr) || pgErr.SQLState() != "22012" {
				t.Fatalf("update %d: %v; want the deliberate division_by_zero", i, err)
			}
		} else if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}

	const want = 1 + nProducts + updates*9/10
	b.sink.WaitFor(want, time.Minute)
	elapsed := time.Since(start)
	waitDrained(t, b.pool)
	if n := b.sink.Count(); n != want {
		t.Fatalf("%d events delivered, want exactly %d (1 category, %d creates, %d committed updates)", n, want, nProducts, updates*9/10)
	}
	updatesSeen := 0
	for _, ev := range b.sink.Events() {
		name := ev.GetProductChanged().GetName()
		if !strings.HasPrefix(name, "update ") {
			continue
		}
		updatesSeen++
		var i int
		if _, err := fmt.Sscanf(name, "update %d", &i); err != nil || i%10 == 3 {
			t.Fatalf("delivered %q, which a rolled-back transaction wrote", name)
		}
	}
	if updatesSeen != updates*9/10 {
		t.Fatalf("%d update events delivered, want %d", updatesSeen, updates*9/10)
	}
	// Every product's highest delivered version is its committed version.
	latest := map[string]int64{}
	for _, ev := range b.sink.Events() {
		latest[ev.GetAggregateId()] = max(latest[ev.GetAggregateId()], ev.GetAggregateVersion())
	}
	for _, id := range ids {
		resp, err := products.GetProduct(ctx, connect.NewRequest(&productv1.GetProductRequest{Id: id}))
		if err != nil {
			t.Fatal(err)
		}
		if v := resp.Msg.Product.Version; latest[id] != v || v != 1+9 {
			t.Fatalf("product %s is at version %d with %d delivered; want 10 (9 committed updates) in both", id, v, latest[id])
		}
	}
	t.Logf("%d updates (%d rolled back after their outbox insert): %d events delivered in %s",
		updates, updates/10, updatesSeen, elapsed.Round(time.Millisecond))
}

func waitDrained(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still queued, want none", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
