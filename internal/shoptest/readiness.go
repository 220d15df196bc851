package shoptest

import (
	"net/http"
	"testing"
	"time"
)

// WaitReady polls baseURL/readyz until it answers 200, failing the test
// after timeout or when done yields first (the server exited).
func WaitReady(t testing.TB, baseURL string, timeout time.Duration, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("server exited before it was ready: %v", err)
		default:
		}
		resp, err := http.Get(baseURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s/readyz not ready within %v", baseURL, timeout)
}
