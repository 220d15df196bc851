package shopload

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"time"
)

// replicas is the part of a Stack that scales out: the replicas after the
// first of each service, the proxies in front of them and PgBouncer.
type replicas struct {
	// PgBouncer pools the services' connections (nil unless
	// StackConfig.PgBouncer).
	PgBouncer *PgBouncer
	// ProductProxy and CartProxy balance the services' calls to each
	// other over the replicas (nil with one replica).
	ProductProxy, CartProxy *BalancingProxy

	productAddrs, productAdmins []string // every replica's, the first's first
	cartAddrs, cartAdmins       []string
	moreProducts, moreCarts     []*Proc
	moreProductArgs             [][]string
}

// prepareReplicas starts PgBouncer if asked, picks the addresses of the
// replicas after the first (whose addresses are given) and starts the
// proxies in front of them.
func (s *Stack) prepareReplicas(ctx context.Context, productAddr, cartAddr string) error {
	cfg := s.cfg
	if cfg.PgBouncer {
		var err error
		s.PgBouncer, err = StartPgBouncer(ctx, PgBouncerConfig{
			Dir: filepath.Join(s.dir, "pgbouncer"), ServerSocketDir: s.pgOpts.Dir,
			Databases: []string{productDBName, cartDBName}, Users: []string{"productsvc", "cartsvc"},
			PoolSize: 20,
		})
		if err != nil {
			return err
		}
	}
	var err error
	if s.productAddrs, s.productAdmins, err = addrs(productAddr, max(cfg.ProductReplicas, 1)); err != nil {
		return err
	}
	if s.cartAddrs, s.cartAdmins, err = addrs(cartAddr, max(cfg.CartReplicas, 1)); err != nil {
		return err
	}
	if len(s.productAddrs) > 1 {
		if s.ProductProxy, err = StartBalancingProxy(baseURLs(s.productAddrs)); err != nil {
			return err
		}
	}
	if len(s.cartAddrs) > 1 {
		if s.CartProxy, err = StartBalancingProxy(baseURLs(s.cartAddrs)); err != nil {
			return err
		}
	}
	return nil
}

// addrs returns n API addresses (first, then free ones) and n admin
// addresses (free; the first's is picked by StartStack, so "" here).
func addrs(first string, n int) (api, admin []string, err error) {
	api, admin = []string{first}, []string{""}
	for range n - 1 {
		a, err := FreeAddr()
		if err != nil {
			return nil, nil, err
		}
		b, err := FreeAddr()
		if err != nil {
			return nil, nil, err
		}
		api, admin = append(api, a), append(admin, b)
	}
	return api, admin, nil
}

func baseURLs(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = "http://" + a
	}
	return out
}

// databaseArgs are the flags of role's replicas for its database db
// beyond --database-url: through PgBouncer, the pooled URL with an exec
// mode without prepared statements and the direct URL; the replica
// count for the connection budget (and cartsvc's events-rate share).
func (s *Stack) databaseArgs(role, db string) []string {
	n := max(s.cfg.ProductReplicas, 1)
	if role == "cartsvc" {
		n = max(s.cfg.CartReplicas, 1)
	}
	args := []string{"--database-replicas", strconv.Itoa(n)}
	if role == "cartsvc" {
		args = append(args, "--replicas", strconv.Itoa(n))
	}
	if s.PgBouncer != nil {
		args = append(args, "--database-url", s.PgBouncer.URL(role, db), "--database-direct-url", s.roleURL(role, db),
			"--database-exec-mode", "describe")
	}
	return args
}

// productURLForCarts is what cartsvc calls productsvc at: the proxy with
// several replicas, else the one replica's url.
func (s *Stack) productURLForCarts(url string) string {
	if s.ProductProxy != nil {
		return s.ProductProxy.URL()
	}
	return url
}

// cartURLForRelays is what the relays deliver to: the proxy with several
// cartsvc replicas, else the one replica's url.
func (s *Stack) cartURLForRelays(url string) string {
	if s.CartProxy != nil {
		return s.CartProxy.URL()
	}
	return url
}

// startReplicas starts the replicas after the first of each service.
func (s *Stack) startReplicas(cartArgs func(addr, admin string, extra ...string) []string) error {
	for i := 1; i < len(s.productAddrs); i++ {
		args := append(append([]string{}, s.productBase...), "--addr", s.productAddrs[i], "--admin-addr", s.productAdmins[i])
		p := NewProc(fmt.Sprintf("productsvc-%d", i+1), s.productBin, args, s.logPath(fmt.Sprintf("productsvc-%d", i+1)), "http://"+s.productAddrs[i])
		if err := p.Start(time.Minute); err != nil {
			return err
		}
		s.moreProducts, s.moreProductArgs = append(s.moreProducts, p), append(s.moreProductArgs, args)
	}
	for i := 1; i < len(s.cartAddrs); i++ {
		name := fmt.Sprintf("cartsvc-%d", i+1)
		p := NewProc(name, filepath.Join(filepath.Dir(s.productBin), "cartsvc"), cartArgs(s.cartAddrs[i], s.cartAdmins[i]), s.logPath(name), "http://"+s.cartAddrs[i])
		if err := p.Start(time.Minute); err != nil {
			return err
		}
		s.moreCarts = append(s.moreCarts, p)
	}
	return nil
}

// enableReplicaEvents restarts the productsvc replicas after the first
// with relayArgs, as EnableEvents does the first.
func (s *Stack) enableReplicaEvents(relayArgs []string) error {
	for i, p := range s.moreProducts {
		p.Stop()
		s.moreProductArgs[i] = append(s.moreProductArgs[i], relayArgs...)
		s.moreProducts[i] = NewProc(p.Name, s.productBin, s.moreProductArgs[i], p.log, p.url)
		if err := s.moreProducts[i].Start(time.Minute); err != nil {
			return err
		}
	}
	return nil
}

// ProductProcs are every productsvc replica, Products first.
func (s *Stack) ProductProcs() []*Proc { return append([]*Proc{s.Products}, s.moreProducts...) }

// CartProcs are every cartsvc replica, Cart first (not CartNoCache).
func (s *Stack) CartProcs() []*Proc { return append([]*Proc{s.Cart}, s.moreCarts...) }

// ProductMetricsURLs are the productsvc replicas' /metrics, in
// ProductProcs' order.
func (s *Stack) ProductMetricsURLs() []string {
	return metricsURLs(s.ProductMetricsURL, s.productAdmins)
}

// CartMetricsURLs are the cartsvc replicas' /metrics, in CartProcs' order.
func (s *Stack) CartMetricsURLs() []string { return metricsURLs(s.CartMetricsURL, s.cartAdmins) }

func metricsURLs(first string, admins []string) []string {
	out := []string{first}
	for _, a := range admins[min(1, len(admins)):] {
		out = append(out, "http://"+a+"/metrics")
	}
	return out
}

// extraProcs are the replicas after the first of each service.
func (s *Stack) extraProcs() []*Proc {
	return append(append([]*Proc{}, s.moreProducts...), s.moreCarts...)
}

// closeReplicas stops the proxies and PgBouncer (after the services).
func (s *Stack) closeReplicas() {
	for _, p := range []*BalancingProxy{s.ProductProxy, s.CartProxy} {
		if p != nil {
			p.Close()
		}
	}
	if s.PgBouncer != nil {
		s.PgBouncer.Stop()
	}
}

// BalancedClients are clients that spread their calls over every ready
// replica of each service (a Balancer, which the caller closes), with
// connections for conns concurrent requests.
func (s *Stack) BalancedClients(conns int) (*Clients, *Balancer) {
	var products, carts []string
	for _, p := range s.ProductProcs() {
		products = append(products, p.URL())
	}
	for _, p := range s.CartProcs() {
		carts = append(carts, p.URL())
	}
	b := NewBalancer(map[string][]string{"productsvc": products, "cartsvc": carts}, NewHTTPClient(conns).Transport)
	return NewClientsVia(&http.Client{Transport: b}, "http://productsvc", "http://cartsvc", ""), b
}
