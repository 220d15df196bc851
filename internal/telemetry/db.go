package telemetry

import (
	"strings"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
)

// QueryTracer returns a pgx tracer that makes one span per database call
// (query, batch, copy, prepare, connect), named by the sqlc query name
// ("GetCart") or else the statement's first word ("SELECT"), with the
// statement text but never its arguments. It returns nil when no spans are
// exported (--trace-exporter none): the query path then costs nothing.
func (t *Telemetry) QueryTracer() pgx.QueryTracer {
	if !t.recording {
		return nil
	}
	return otelpgx.NewTracer(
		otelpgx.WithTracerProvider(t.TracerProvider),
		// Per-query duration histograms would duplicate the spans in every
		// scrape; pool statistics come from PoolCollector.
		otelpgx.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelpgx.WithSpanNameFunc(QueryName),
		otelpgx.WithDisableConnectionDetailsInAttributes(),
	)
}

// QueryName names a statement for its span: the sqlc name from its leading
// "-- name: GetCart :one" comment, else its first word in upper case.
func QueryName(stmt string) string {
	stmt = strings.TrimSpace(stmt)
	if rest, ok := strings.CutPrefix(stmt, "-- name: "); ok {
		if name, _, ok := strings.Cut(rest, " "); ok && name != "" {
			return name
		}
	}
	for strings.HasPrefix(stmt, "--") { // other leading comments
		_, stmt, _ = strings.Cut(stmt, "\n")
		stmt = strings.TrimSpace(stmt)
	}
	word, _, _ := strings.Cut(stmt, " ")
	return strings.ToUpper(word)
}
