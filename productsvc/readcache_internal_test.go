package productsvc

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	productv1 "github.com/decoupledshop/shop/gen/proto/shop/product/v1"
	productdb "github.com/decoupledshop/shop/gen/sqlc/product"
)

// A read that raced a change stores nothing, a cache that cannot hear
// changes serves nothing, entries expire, and the size is bounded.
func TestReadCacheNeverKeepsWhatAChangeOvertook(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := newReadCache(ReadCacheConfig{MB: 1, TTL: time.Minute}, func() time.Time { return now })
	p := productdb.Product{ID: uuid.New(), Name: "lamp", Version: 1}

	if _, _, ok := c.get(p.ID); ok {
		t.Fatal("a cache that is not live served")
	}
	c.fill(0, p)
	c.setLive(true)
	if _, _, ok := c.get(p.ID); ok {
		t.Fatal("a cache filled while not live served what it was given")
	}

	_, gen, _ := c.get(p.ID)
	c.drop([]uuid.UUID{p.ID}) // the change commits while the read is in flight
	c.fill(gen, p)            // the read, with the old row, ends
	if got, _, ok := c.get(p.ID); ok {
		t.Fatalf("a read that raced a change was kept: %+v", got)
	}

	_, gen, _ = c.get(p.ID)
	c.fill(gen, p)
	if got, _, ok := c.get(p.ID); !ok || got.Name != "lamp" {
		t.Fatalf("after a clean fill: %+v, %v", got, ok)
	}
	now = now.Add(time.Minute)
	if _, _, ok := c.get(p.ID); ok {
		t.Fatal("an entry was served after its TTL")
	}

	description := strings.Repeat("x", 4000)
	for range 1000 { // about 4 MB into a 1 MB cache
		q := productdb.Product{ID: uuid.New(), Description: description}
		_, gen, _ := c.get(q.ID)
		c.fill(gen, q)
	}
	held := 0
	for i := range c.shards {
		s := &c.shards[i]
		sum := 0
		for _, e := range s.entries {
			sum += entryCost(e.v)
		}
		if sum != s.bytes || s.bytes > s.max {
			t.Fatalf("shard %d: %d bytes counted, %d held, bound %d", i, s.bytes, sum, s.max)
		}
		held += sum
	}
	if held > 1<<20 || held < 1<<19 {
		t.Fatalf("%d bytes held after 4 MB of fills into a 1 MB cache", held)
	}
	page := &productv1.ListProductsResponse{Products: []*productv1.Product{{Id: p.ID.String()}}}
	_, gen, _ = c.getList("oak")
	c.drop([]uuid.UUID{uuid.New()}) // any product's change drops every page
	c.fillList(gen, "oak", page)
	if _, _, ok := c.getList("oak"); ok {
		t.Fatal("a page read while a product changed was kept")
	}
	_, gen, _ = c.getList("oak")
	c.fillList(gen, "oak", page)
	if got, _, ok := c.getList("oak"); !ok || got != page {
		t.Fatal("a clean page fill was not kept")
	}
	c.drop([]uuid.UUID{uuid.New()})
	if _, _, ok := c.getList("oak"); ok {
		t.Fatal("a page outlived a product change")
	}

	c.dropAll()
	c.setLive(false)
	if _, _, ok := c.get(p.ID); ok {
		t.Fatal("served after it stopped being live")
	}
}
