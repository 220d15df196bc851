package shoptest

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// handedOut holds the ports FreeAddr has returned in this process.
var handedOut sync.Map

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for starting a real main that takes an address flag. Ports come from
// below Linux's ephemeral range (32768 and up by default), so the kernel
// never hands them to an outgoing connection meanwhile; they are random, so
// tests running at once rarely pick the same one.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue // never the same port twice in one test binary
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			ln.Close()
			return ln.Addr().String()
		}
	}
	t.Fatal("no free loopback port in 20000-31999 after 100 tries")
	return ""
}
