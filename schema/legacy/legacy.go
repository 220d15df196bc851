// Package legacy holds the SQL of a representative legacy database (the
// one database the system this project replaces kept everything in) and of
// its test-dataset generator, for shopmigrate and its tests.
package legacy

import _ "embed"

// Schema creates the legacy tables, foreign keys and triggers in an empty
// database.
//
//go:embed 001_schema.sql
var Schema string

// Generate fills a database holding Schema, and nothing else, with a
// deterministic dataset whose size comes from the legacy.* settings named
// in the file.
//
//go:embed generate.sql
var Generate string
