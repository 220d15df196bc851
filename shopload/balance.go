package shopload

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Balancer is a client-side load balancer: an http.RoundTripper that sends
// each request for a service's name (the host of http://productsvc/…) to
// the next of its replicas that is ready, round robin, as a health-checking
// balancer in front of replicas would. Readiness is each replica's
// GET /readyz, polled every CheckEvery; a replica that refuses the
// connection is taken out at once and the request goes to the next one
// (nothing was sent, so any request may). When no replica is ready, each
// is tried in turn.
type Balancer struct {
	base     http.RoundTripper
	services map[string]*replicaSet
	check    *http.Client
	stop     chan struct{}
	stopped  sync.WaitGroup
	once     sync.Once
}

type replicaSet struct {
	next     atomic.Uint64
	replicas []*replica
}

type replica struct {
	host  string // host:port
	ready atomic.Bool
	sent  atomic.Int64
}

// CheckEvery is how often a Balancer asks each replica whether it is ready.
const CheckEvery = 50 * time.Millisecond

// NewBalancer balances services (a name → its replicas' base URLs,
// http://host:port) over base (default: a transport like NewHTTPClient's
// for 64 connections). Close stops its health checks.
func NewBalancer(services map[string][]string, base http.RoundTripper) *Balancer {
	if base == nil {
		base = NewHTTPClient(64).Transport
	}
	b := &Balancer{
		base: base, services: map[string]*replicaSet{}, stop: make(chan struct{}),
		check: &http.Client{Timeout: time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}},
	}
	for name, urls := range services {
		set := &replicaSet{}
		for _, u := range urls {
			pu, err := url.Parse(u)
			if err != nil {
				continue
			}
			r := &replica{host: pu.Host}
			r.ready.Store(true)
			set.replicas = append(set.replicas, r)
			b.stopped.Go(func() { b.watch(r) })
		}
		b.services[name] = set
	}
	return b
}

// watch polls r's readiness until Close.
func (b *Balancer) watch(r *replica) {
	t := time.NewTicker(CheckEvery)
	defer t.Stop()
	for {
		resp, err := b.check.Get("http://" + r.host + "/readyz")
		ok := err == nil && resp.StatusCode == http.StatusOK
		if err == nil {
			resp.Body.Close()
		}
		r.ready.Store(ok)
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
	}
}

// RoundTrip sends req to a ready replica of the service its host names;
// a host that names no service is sent as it is.
func (b *Balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	set, ok := b.services[req.URL.Host]
	if !ok || len(set.replicas) == 0 {
		return b.base.RoundTrip(req)
	}
	var err error
	for range len(set.replicas) {
		r := set.pick()
		out := req.Clone(req.Context())
		out.URL.Host, out.Host = r.host, r.host
		if req.Body != nil && req.GetBody != nil && err != nil {
			if out.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		var resp *http.Response
		resp, err = b.base.RoundTrip(out)
		if err == nil || !refused(err) {
			if err == nil {
				r.sent.Add(1)
			}
			return resp, err
		}
		r.ready.Store(false) // until its next check says otherwise
		if req.Body != nil && req.GetBody == nil {
			return nil, err
		}
	}
	return nil, err
}

// pick returns the next ready replica, or the next one if none is ready.
func (s *replicaSet) pick() *replica {
	n := uint64(len(s.replicas))
	start := s.next.Add(1)
	for i := range n {
		if r := s.replicas[(start+i)%n]; r.ready.Load() {
			return r
		}
	}
	return s.replicas[start%n]
}

// refused reports whether err is a failure to connect, before anything
// of the request was sent.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Sent returns how many requests each replica of service answered, in the
// order given to NewBalancer.
func (b *Balancer) Sent(service string) []int64 {
	set := b.services[service]
	if set == nil {
		return nil
	}
	out := make([]int64, len(set.replicas))
	for i, r := range set.replicas {
		out[i] = r.sent.Load()
	}
	return out
}

// Close stops the health checks.
func (b *Balancer) Close() {
	b.once.Do(func() {
		close(b.stop)
		b.stopped.Wait()
	})
}

// BalancingProxy is a reverse proxy on a loopback port in front of one
// service's replicas, through a Balancer: what a load balancer is for the
// services' calls to each other (cartsvc → productsvc, relays → cartsvc).
type BalancingProxy struct {
	// Balancer spreads the proxied requests; read its Sent counts.
	Balancer *Balancer
	srv      *http.Server
	url      string
}

// StartBalancingProxy listens on a free loopback port and forwards every
// request to a ready replica of urls (HTTP/1.1 both ways, as the services'
// clients call each other). A request no replica answered gets 502, which
// Connect clients read as Unavailable.
func StartBalancingProxy(urls []string) (*BalancingProxy, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	const name = "upstream"
	b := NewBalancer(map[string][]string{name: urls}, nil)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", name, ""
		},
		Transport: b,
		// A caller that gives up (cancels) is not the proxy's error.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p := &BalancingProxy{Balancer: b, url: "http://" + addr, srv: &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's base URL.
func (p *BalancingProxy) URL() string { return p.url }

// Close stops the proxy and its health checks.
func (p *BalancingProxy) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
	p.Balancer.Close()
}
