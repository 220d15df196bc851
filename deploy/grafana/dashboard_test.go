package grafana_test

import (
	"encoding/json"
	"testing"

	"github.com/decoupledshop/shop/deploy/grafana"
	"github.com/decoupledshop/shop/deploy/prometheus"
)

// TestDashboardIsWellFormed: the JSON loads, panel ids are unique, every
// panel queries the dashboard's data source variable, and every
// expression selects series. (devstack's scrape test checks those series
// against what the running services export.)
func TestDashboardIsWellFormed(t *testing.T) {
	t.Parallel()
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID         int    `json:"id"`
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(grafana.Dashboard, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard uid %q with %d panels", d.UID, len(d.Panels))
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q queries data source %q, want ${datasource}", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if len(prometheus.MetricNames(tg.Expr)) == 0 {
				t.Errorf("panel %q: %q selects no series", p.Title, tg.Expr)
			}
		}
	}
	exprs, err := grafana.Expressions()
	if err != nil || len(exprs) < len(d.Panels) {
		t.Fatalf("Expressions() = %d, %v", len(exprs), err)
	}
}
