package deadletter

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/decoupledshop/shop/gen/proto/shop/events/v1"
)

func TestIDs(t *testing.T) {
	t.Parallel()
	id := uuid.NewString()
	if ids, err := IDs([]string{id}, false); err != nil || len(ids) != 1 || ids[0].String() != id {
		t.Fatalf("one id: %v, %v", ids, err)
	}
	if ids, err := IDs(nil, false); err != nil || len(ids) != 0 {
		t.Fatalf("nothing chosen: %v, %v; want no ids and no error", ids, err)
	}
	for name, c := range map[string]struct {
		raw   []string
		all   bool
		field string
	}{
		"ids and all": {[]string{id}, true, "ids"},
		"too many":    {make([]string, MaxIDs+1), false, "ids"},
		"not a uuid":  {[]string{id, "x"}, false, "ids[1]"},
	} {
		if _, err := IDs(c.raw, c.all); err == nil || !strings.HasPrefix(err.Error(), c.field+":") {
			t.Errorf("%s: %v, want an error naming %s", name, err, c.field)
		}
	}
}

func TestMessage(t *testing.T) {
	t.Parallel()
	ev := &eventsv1.Event{Id: uuid.NewString(), Type: "shop.events.v1.ProductDeleted"}
	b, _ := proto.Marshal(ev)
	id := uuid.New()
	m, err := Message(id, b, "cartsvc", "boom", 3, time.Unix(10, 0))
	if err != nil || m.Id != id.String() || !proto.Equal(m.Event, ev) || m.Peer != "cartsvc" || m.Reason != "boom" || m.Attempts != 3 || m.CreateTime.Seconds != 10 {
		t.Fatalf("Message = %v, %v", m, err)
	}
	if _, err := Message(id, []byte{0xff}, "", "", 0, time.Time{}); err == nil {
		t.Fatal("undecodable event bytes accepted")
	}
}
