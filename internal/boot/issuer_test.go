package boot_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decoupledshop/shop/internal/auth"
	"github.com/decoupledshop/shop/internal/boot"
	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/shoptest"
)

func TestVerifierWaitsForAnIssuerStartedLate(t *testing.T) {
	t.Parallel()
	addr := shoptest.FreeAddr(t)
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))

	type result struct {
		v   *auth.Verifier
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := boot.NewVerifier(context.Background(), auth.Config{IssuerURL: "http://" + addr}, time.Minute, log)
		done <- result{v, err}
	}()

	iss := startIssuerAfterARetry(t, &logs, addr)

	r := <-done
	if r.err != nil {
		t.Fatalf("newVerifier with an issuer started late: %v; want it to wait for it", r.err)
	}
	tok, err := iss.UserToken(devissuer.DemoAlice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.v.Verify(context.Background(), tok); err != nil {
		t.Errorf("the verifier built after waiting refuses the late issuer's token: %v", err)
	}
	var warned, reachable bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		switch rec["msg"] {
		case "OIDC issuer not reachable yet, retrying":
			warned = rec["level"] == "WARN" && rec["issuer"] == "http://"+addr && rec["retry_in"] != nil
		case "OIDC issuer reachable":
			reachable = true
		}
	}
	if !warned || !reachable {
		t.Errorf("want a WARN per failed attempt naming the issuer and the delay, then one line when it answered; logs:\n%s", logs.String())
	}
}

// startIssuerAfterARetry starts the dev issuer on addr once logs show a
// failed attempt to reach it.
func startIssuerAfterARetry(t *testing.T, logs *lockedBuffer, addr string) *devissuer.Issuer {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(logs.String(), "retrying") {
		if time.Now().After(deadline) {
			t.Fatalf("no retry logged within a minute; logs:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	iss, err := devissuer.Start(devissuer.DemoConfig(), addr)
	if err != nil {
		t.Fatalf("start the issuer late on %s: %v", addr, err)
	}
	t.Cleanup(func() { iss.Close() })
	return iss
}

func TestVerifierWaitIsBounded(t *testing.T) {
	t.Parallel()
	addr := shoptest.FreeAddr(t)
	var logs lockedBuffer
	start := time.Now()
	_, err := boot.NewVerifier(context.Background(), auth.Config{IssuerURL: "http://" + addr}, 600*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	if err == nil {
		t.Fatal("newVerifier with no issuer returned no error")
	}
	if !strings.Contains(err.Error(), "gave up after") || !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q should name the issuer and say it gave up", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("gave up after %v, want about the 600ms asked for", took)
	}
	if n := strings.Count(logs.String(), "retrying"); n < 2 {
		t.Errorf("%d retries logged in 600ms, want at least 2 (250ms, then 350ms left); logs:\n%s", n, logs.String())
	}
}

func TestVerifierGivesUpAtOnceOnAMisconfiguredIssuer(t *testing.T) {
	t.Parallel()
	// A discovery document for another issuer: waiting cannot fix that.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"issuer":"https://someone.else","jwks_uri":"https://someone.else/jwks"}`))
	}))
	t.Cleanup(srv.Close)
	var logs lockedBuffer
	start := time.Now()
	_, err := boot.NewVerifier(context.Background(), auth.Config{IssuerURL: srv.URL}, time.Minute, slog.New(slog.NewTextHandler(&logs, nil)))
	if err == nil {
		t.Fatal("an issuer whose discovery names another issuer was accepted")
	}
	if took := time.Since(start); took > 10*time.Second || strings.Contains(logs.String(), "retrying") {
		t.Errorf("misconfiguration retried (took %v; logs %q), want an error at once: %v", took, logs.String(), err)
	}
}

func TestVerifierRetriesADiscoveryServerError(t *testing.T) {
	t.Parallel()
	keys, err := devissuer.New(devissuer.DemoConfig())
	if err != nil {
		t.Fatal(err)
	}
	// An issuer behind a proxy that answers 503 twice, as while it starts,
	// then its discovery and the dev issuer's real keys.
	var mu sync.Mutex
	unavailable := 2
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fail := unavailable > 0
		unavailable--
		mu.Unlock()
		switch {
		case fail:
			http.Error(w, "starting", http.StatusServiceUnavailable)
		case r.URL.Path == "/jwks":
			json.NewEncoder(w).Encode(keys.JWKS())
		default:
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": srv.URL + "/jwks"})
		}
	}))
	t.Cleanup(srv.Close)
	var logs lockedBuffer
	if _, err := boot.NewVerifier(context.Background(), auth.Config{IssuerURL: srv.URL}, time.Minute, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatalf("an issuer answering 503 twice, then its discovery: %v; want the verifier after retries", err)
	}
	if n := strings.Count(logs.String(), "retrying"); n != 2 {
		t.Errorf("%d retries logged, want 2 (one per 503); logs:\n%s", n, logs.String())
	}
}

func TestIssuerWaitFlag(t *testing.T) {
	t.Parallel()
	c, err := parse(nil, nil)
	if err != nil || c.IssuerWait != boot.DefaultIssuerWait {
		t.Errorf("default: %v, %v; want %v", c.IssuerWait, err, boot.DefaultIssuerWait)
	}
	c, err = parse(nil, map[string]string{"OIDC_ISSUER_WAIT": "45s"})
	if err != nil || c.IssuerWait != 45*time.Second {
		t.Errorf("OIDC_ISSUER_WAIT=45s: %v, %v", c.IssuerWait, err)
	}
}
