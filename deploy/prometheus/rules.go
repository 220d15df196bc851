// Package prometheus holds the shop's Prometheus alerting rules
// (shop.rules.yml) and their promtool unit tests, embedded so that the dev
// stack can load them wherever it runs.
package prometheus

import _ "embed"

// Rules is shop.rules.yml: the alerting rules for both services.
//
//go:embed shop.rules.yml
var Rules []byte
