package productsvc_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	"github.com/decoupledshop/shop/gen/proto/shop/product/v1/productv1connect"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
	"github.com/decoupledshop/shop/internal/pgtest"
	"github.com/decoupledshop/shop/internal/shoptest"
	"github.com/decoupledshop/shop/productsvc"
	"github.com/decoupledshop/shop/productsvc/relay/sinktest"
)

func TestRunDocumentsAndChecksTheRelayFlags(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := productsvc.Run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-subscribers", "SUBSCRIBERS", "-relay-client-id", "-relay-client-secret", "-relay-max-attempts", "-relay-max-age", "-relay-lease", "-relay-call-timeout", "-relay-lanes", "-relay-probe-interval", "-relay-poll-interval", "-relay-token-url"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"SUBSCRIBERS": "cartsvc"}, "--subscribers"},
		{map[string]string{"SUBSCRIBERS": "cartsvc=http://localhost:8082"}, "--relay-client-id"},
		{map[string]string{"SUBSCRIBERS": "cartsvc=http://localhost:8082", "RELAY_CLIENT_ID": "x", "RELAY_CLIENT_SECRET": "y", "RELAY_MAX_ATTEMPTS": "0"}, "--relay-max-attempts"},
	} {
		err := productsvc.Run(context.Background(), nil, func(k string) string { return tc.env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run with %v: %v; want an error naming %s", tc.env, err, tc.want)
		}
	}
}

// TestRunDeliversEventsToTheSubscribers runs the real productsvc main with
// a subscriber, as deployed: a change made over HTTP reaches the
// subscriber's EventSinkService.
func TestRunDeliversEventsToTheSubscribers(t *testing.T) {
	t.Parallel()
	iss := shoptest.Issuer(t)
	sink := sinktest.Start(t, iss)
	addr := shoptest.FreeAddr(t)
	env := map[string]string{
		"ADDR":                addr,
		"DATABASE_URL":        pgtest.NewDatabase(t, productSchema),
		"OIDC_ISSUER_URL":     iss.URL(),
		"DRAIN_DELAY":         "-1s", // 0 would mean the default
		"ADMIN_ADDR":          "127.0.0.1:0",
		"SUBSCRIBERS":         "cartsvc=" + sink.URL(),
		"RELAY_CLIENT_ID":     devissuer.DemoRelayClient,
		"RELAY_CLIENT_SECRET": devissuer.DemoRelaySecret,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- productsvc.Run(ctx, nil, func(k string) string { return env[k] }, io.Discard, t.Output())
	}()
	base := "http://" + addr
	shoptest.WaitReady(t, base, 20*time.Second, done)

	p := shoptest.ConnectJSON()
	cats := productv1connect.NewCategoryServiceClient(p.Client, base, p.ClientOptions(issuertest.UserToken(t, iss, shoptest.Admin))...)
	cat, err := cats.CreateCategory(context.Background(), connect.NewRequest(&productv1.CreateCategoryRequest{Name: "Shoes"}))
	if err != nil {
		t.Fatal(err)
	}
	sink.WaitFor(1, 10*time.Second)
	if ev := sink.Events()[0]; ev.GetCategoryChanged().GetId() != cat.Msg.Category.Id {
		t.Fatalf("delivered %v, want the new category's CategoryChanged", ev)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
