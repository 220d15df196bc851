package eventstest_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/decoupledshop/shop/cartsvc"
	"github.com/decoupledshop/shop/cartsvc/productclient"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	"github.com/decoupledshop/shop/internal/pgdb"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/server"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/internal/telemetry"
	"github.com/decoupledshop/shop/productsvc"
	"github.com/decoupledshop/shop/productsvc/relay"
)

// traced is productsvc and one cartsvc wired as their Run functions wire
// them, with telemetry recording every span into one in-memory exporter.
type traced struct {
	*shop
	cart       *cart
	spans      *tracetest.InMemoryExporter
	productTel *telemetry.Telemetry
}

// deliver starts productsvc's relay, traced, until the test ends.
func (tr *traced) deliver(t *testing.T) {
	tr.startRelay(t, relay.Config{
		Subscribers:    []relay.Subscriber{{Name: "cartsvc", URL: tr.cart.url}},
		ClientOptions:  tr.productTel.ClientOptions(),
		TracerProvider: tr.productTel.TracerProvider,
	})
}

func newTraced(t *testing.T) *traced {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	productTel := telemetry.ForTest("productsvc", spans, nil)
	cartTel := telemetry.ForTest("cartsvc", spans, nil)
	t.Cleanup(productTel.Close)
	t.Cleanup(cartTel.Close)

	s := newShop(t) // its own productsvc serves no traces; this one does
	productPool := tracedPool(t, s.productDB, productTel)
	catalogs := productsvc.NewStore(productPool, productsvc.NewOutbox([]string{"cartsvc"}, nil, nil), "EUR", nil, nil)
	pcfg := shoptest.ServerConfig(t, s.productPool.Ping)
	psrv := server.New(pcfg)
	productsvc.Mount(psrv, append(productTel.HandlerOptions(), server.HandlerOptions(pcfg)...), s.verifier, catalogs)
	s.productURL = shoptest.Serve(t, psrv)
	s.products = productv1connect.NewProductServiceClient(shoptest.HTTPClient(), s.productURL, connect.WithInterceptors(shoptest.Bearer(s.admin)))
	s.categories = productv1connect.NewCategoryServiceClient(shoptest.HTTPClient(), s.productURL, connect.WithInterceptors(shoptest.Bearer(s.admin)))

	c := &cart{dbURL: pgtest.NewDatabase(t, pgtest.CartSchema)}
	c.pool = tracedPool(t, c.dbURL, cartTel)
	var err error
	if c.catalog, err = productclient.New(productclient.Config{BaseURL: s.productURL, CallTimeout: 5 * time.Second, ClientOptions: cartTel.ClientOptions()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.catalog.Close)
	c.svc = cartsvc.NewService(c.pool, c.catalog, cartsvc.Options{Tracer: cartTel.Tracer("cartsvc")})
	ccfg := shoptest.ServerConfig(t, c.pool.Ping)
	csrv := server.New(ccfg)
	cartsvc.Mount(csrv, append(cartTel.HandlerOptions(), server.HandlerOptions(ccfg)...), s.verifier, c.svc)
	c.url = shoptest.Serve(t, csrv)

	return &traced{shop: s, cart: c, spans: spans, productTel: productTel}
}

// tracedPool opens a pool on dbURL as boot does, with tel's database spans.
func tracedPool(t *testing.T, dbURL string, tel *telemetry.Telemetry) *pgxpool.Pool {
	t.Helper()
	pool, err := pgdb.Open(context.Background(), dbURL, pgdb.Options{MaxConns: 8, Tracer: tel.QueryTracer()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// spansNamed returns the finished spans called name.
func (tr *traced) spansNamed(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range tr.spans.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// inTrace returns the finished spans called name in trace id.
func (tr *traced) inTrace(name string, id trace.TraceID) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range tr.spansNamed(name) {
		if s.SpanContext.TraceID() == id {
			out = append(out, s)
		}
	}
	return out
}

const (
	updateProductSpan  = "shop.product.v1.ProductService/UpdateProduct"
	updateCategorySpan = "shop.product.v1.CategoryService/UpdateCategory"
	deliverServerSpan  = "shop.events.v1.EventSinkService/DeliverEvents"
	relaySpan          = "relay.deliver"
	applySpan          = "cartsvc.apply_events"
)

// TestOneTraceFromPriceChangeToCart: an admin's UpdateProduct starts a
// trace; the relay's delivery span, the DeliverEvents call it makes and
// cartsvc's span applying the event to alice's cart are all in it, each
// the child of the one before, linked through the traceparent stored in
// the outbox. A category rename's events (one per product, delivered in
// one batch) are each applied in the rename's trace.
func TestOneTraceFromPriceChangeToCart(t *testing.T) {
	t.Parallel()
	tr := newTraced(t)
	alice := tr.userToken(t, shoptest.Alice)
	cat := tr.createCategory(t, "Shoes")
	runner := tr.createProduct(t, cat.Id, "RUN-1", "Runner", 8999)
	tr.createProduct(t, cat.Id, "WALK-1", "Walker", 6500)
	tr.deliver(t)
	tr.cart.add(t, alice, runner.Id, 1)
	tr.waitDrained(t, 10*time.Second)

	tr.setPrice(t, runner.Id, 7999)
	updates := tr.spansNamed(updateProductSpan)
	if len(updates) != 1 {
		t.Fatalf("%d UpdateProduct spans, want 1", len(updates))
	}
	update := updates[0]
	id := update.SpanContext.TraceID()
	var apply tracetest.SpanStub
	eventually(t, 10*time.Second, "cartsvc applied the price change in UpdateProduct's trace", func() bool {
		got := tr.inTrace(applySpan, id)
		if len(got) == 1 {
			apply = got[0]
		}
		return len(got) == 1
	})
	if line := tr.cart.getCart(t, alice).Items[0]; line.UnitPrice.AmountMinor != 7999 {
		t.Fatalf("alice's line costs %d after the change, want 7999", line.UnitPrice.AmountMinor)
	}

	// The chain: UpdateProduct → relay.deliver → DeliverEvents (client,
	// then server) → apply, every one in the same trace.
	deliver := tr.inTrace(relaySpan, id)
	server := tr.inTrace(deliverServerSpan, id)
	if len(deliver) != 1 || len(server) != 2 {
		t.Fatalf("in UpdateProduct's trace: %d relay.deliver spans and %d DeliverEvents spans (client and server), want 1 and 2", len(deliver), len(server))
	}
	if deliver[0].Parent.SpanID() != update.SpanContext.SpanID() {
		t.Errorf("relay.deliver's parent is %s, want UpdateProduct's span %s (from the stored traceparent)", deliver[0].Parent.SpanID(), update.SpanContext.SpanID())
	}
	if !linksTo(deliver[0], update.SpanContext) {
		t.Errorf("relay.deliver has links %v, want one to UpdateProduct's span", deliver[0].Links)
	}
	var serverSide tracetest.SpanStub
	for _, s := range server {
		if s.SpanKind == trace.SpanKindServer {
			serverSide = s
		}
	}
	if apply.Parent.SpanID() != serverSide.SpanContext.SpanID() {
		t.Errorf("the apply span's parent is %s, want cartsvc's DeliverEvents span %s", apply.Parent.SpanID(), serverSide.SpanContext.SpanID())
	}
	if !hasIntAttr(apply, "shop.events.applied", 1) {
		t.Errorf("the apply span has attributes %v, want shop.events.applied=1", apply.Attributes)
	}
	// Database calls are spans too, named by their sqlc query.
	// The first use of a statement on a connection also prepares it, in a
	// span of the same name marked with the statement's name: count the
	// executions only.
	outbox := slices.DeleteFunc(tr.inTrace("InsertOutboxEvents", id), func(s tracetest.SpanStub) bool {
		return slices.ContainsFunc(s.Attributes, func(kv attribute.KeyValue) bool { return kv.Key == otelpgx.PrepareStmtNameKey })
	})
	if len(outbox) != 1 || !tr.under(outbox[0], update) {
		t.Errorf("InsertOutboxEvents spans in UpdateProduct's trace: %d, want 1, under UpdateProduct (directly or in a batch)", len(outbox))
	}
	var queries []string
	for _, sp := range tr.spans.GetSpans() {
		if sp.Parent.SpanID() == apply.SpanContext.SpanID() {
			queries = append(queries, sp.Name)
		}
	}
	if !slices.ContainsFunc(queries, func(n string) bool { return strings.HasPrefix(n, "Record") || strings.HasPrefix(n, "Raise") }) {
		t.Errorf("the apply span's children are %v, want its database calls named by their sqlc queries", queries)
	}

	// A rename: one event per product, all caused by one request.
	tr.renameCategory(t, cat.Id, "Footwear")
	renames := tr.spansNamed(updateCategorySpan)
	if len(renames) != 1 {
		t.Fatalf("%d UpdateCategory spans, want 1", len(renames))
	}
	renameID := renames[0].SpanContext.TraceID()
	tr.waitDrained(t, 10*time.Second)
	eventually(t, 10*time.Second, "the rename's events (CategoryChanged, two ProductChanged) were applied in its trace", func() bool {
		n := 0
		for _, a := range tr.inTrace(applySpan, renameID) {
			n += int(intAttr(a, "messaging.batch.message_count"))
		}
		return n == 3
	})
	for _, d := range append(tr.inTrace(relaySpan, renameID), tr.inTrace(applySpan, renameID)...) {
		if !linksTo(d, renames[0].SpanContext) {
			t.Errorf("a %s span of the rename has links %v, want one to UpdateCategory's span", d.Name, d.Links)
		}
	}
}

// TestDeliveryOfManyRequestsLinksEach: a batch carrying the events of
// several requests starts a trace of its own, and both its delivery span
// and the span applying it in cartsvc link each request's span.
func TestDeliveryOfManyRequestsLinksEach(t *testing.T) {
	t.Parallel()
	tr := newTraced(t)
	cat := tr.createCategory(t, "Hats")
	a := tr.createProduct(t, cat.Id, "HAT-1", "Beanie", 1500)
	tr.setPrice(t, a.Id, 1400)
	tr.deliver(t) // one claim, one batch: three requests' events
	tr.waitDrained(t, 10*time.Second)

	var causes []tracetest.SpanStub
	for _, s := range tr.spans.GetSpans() {
		if s.SpanKind == trace.SpanKindServer && s.Name != deliverServerSpan {
			causes = append(causes, s)
		}
	}
	if len(causes) != 3 {
		t.Fatalf("%d request spans, want 3 (CreateCategory, CreateProduct, UpdateProduct)", len(causes))
	}
	var deliveries, applies []tracetest.SpanStub
	eventually(t, 10*time.Second, "the batch was applied", func() bool {
		deliveries, applies = tr.spansNamed(relaySpan), tr.spansNamed(applySpan)
		return len(applies) == 1
	})
	if len(deliveries) != 1 {
		t.Fatalf("%d delivery spans, want 1 (one batch)", len(deliveries))
	}
	d, apply := deliveries[0], applies[0]
	if d.Parent.IsValid() {
		t.Errorf("the delivery of three requests' events has parent %v, want a trace of its own", d.Parent)
	}
	if apply.SpanContext.TraceID() != d.SpanContext.TraceID() {
		t.Errorf("the apply span is in trace %s, want the delivery's %s", apply.SpanContext.TraceID(), d.SpanContext.TraceID())
	}
	for _, c := range causes {
		if !linksTo(d, c.SpanContext) || !linksTo(apply, c.SpanContext) {
			t.Errorf("the delivery and apply spans do not both link %s", c.Name)
		}
	}
}

// under reports whether s is a child of parent, or of a batch span (a
// pipelined transaction's round trip) that is.
func (tr *traced) under(s, parent tracetest.SpanStub) bool {
	if s.Parent.SpanID() == parent.SpanContext.SpanID() {
		return true
	}
	for _, b := range tr.spans.GetSpans() {
		if b.SpanContext.SpanID() == s.Parent.SpanID() {
			return b.Name == "batch start" && b.Parent.SpanID() == parent.SpanContext.SpanID()
		}
	}
	return false
}

func linksTo(s tracetest.SpanStub, sc trace.SpanContext) bool {
	for _, l := range s.Links {
		if l.SpanContext.TraceID() == sc.TraceID() && l.SpanContext.SpanID() == sc.SpanID() {
			return true
		}
	}
	return false
}

func intAttr(s tracetest.SpanStub, key string) int64 {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.AsInt64()
		}
	}
	return -1
}

func hasIntAttr(s tracetest.SpanStub, key string, want int64) bool { return intAttr(s, key) == want }
