// Package migrations holds cartsvc's numbered goose migrations. They are
// embedded into the binary, applied at start-up, and are also the schema sqlc
// reads (sqlc.yaml).
package migrations

import "embed"

// FS holds the *.sql migrations at its root, in goose order.
//
//go:embed *.sql
var FS embed.FS
