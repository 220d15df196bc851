// Package grafana holds the shop's Grafana dashboard (shop.json: RPC rate,
// errors and latency, the product cache, the catalog breaker, event
// delivery lag, the outbox and dead letters, database pools), to import
// into Grafana with a Prometheus data source scraping the services' admin
// listeners.
package grafana

import (
	_ "embed"
	"encoding/json"
)

// Dashboard is shop.json.
//
//go:embed shop.json
var Dashboard []byte

// Expressions returns the PromQL expression of every target of every panel
// of Dashboard.
func Expressions() ([]string, error) {
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		return nil, err
	}
	var exprs []string
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			exprs = append(exprs, t.Expr)
		}
	}
	return exprs, nil
}
