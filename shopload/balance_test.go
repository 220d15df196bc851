package shopload_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/decoupledshop/shop/shopload"
)

// replicaServer is a replica that answers /readyz as ready says and
// every other request with its name.
func replicaServer(t *testing.T, name string, ready *atomic.Bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, name+":"+string(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestBalancerSendsToReadyReplicasOnly: requests go round robin to the
// ready replicas; one that stops being ready gets none once a check saw
// it; one that refuses connections is skipped for the same request.
func TestBalancerSendsToReadyReplicasOnly(t *testing.T) {
	t.Parallel()
	var readyA, readyB atomic.Bool
	readyA.Store(true)
	readyB.Store(true)
	a, b := replicaServer(t, "a", &readyA), replicaServer(t, "b", &readyB)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // refuses connections
	lb := shopload.NewBalancer(map[string][]string{"svc": {a.URL, b.URL, gone.URL}}, nil)
	t.Cleanup(lb.Close)
	client := &http.Client{Transport: lb}
	call := func() string {
		t.Helper()
		resp, err := client.Post("http://svc/x", "text/plain", strings.NewReader("hi"))
		if err != nil {
			t.Fatalf("POST through the balancer: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	got := map[string]int{}
	for range 30 {
		got[call()]++
	}
	if got["a:hi"] == 0 || got["b:hi"] == 0 || got["a:hi"]+got["b:hi"] != 30 {
		t.Errorf("answers %v; want all 30 from a and b (the refusing replica skipped, the body resent)", got)
	}
	readyB.Store(false)
	time.Sleep(3 * shopload.CheckEvery)
	for range 10 {
		if who := call(); who != "a:hi" {
			t.Fatalf("answered by %q after b turned not ready; want a only", who)
		}
	}
	if sent := lb.Sent("svc"); sent[2] != 0 {
		t.Errorf("the refusing replica answered %d", sent[2])
	}
}
