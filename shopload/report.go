package shopload

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// RepResult is one scenario's result in one repetition.
type RepResult struct {
	Rep      int            `json:"rep"`
	Requests int            `json:"requests"`
	Failed   int            `json:"failed"`
	Errors   map[string]int `json:"errors,omitempty"`
	Seconds  float64        `json:"seconds"`
	RPS      float64        `json:"rps"`
	P50Ms    float64        `json:"p50_ms"`
	P99Ms    float64        `json:"p99_ms"`
	// CPUPerRequestUs is each process's CPU per request (per event for
	// the backlog), in microseconds; postgres counts the whole server.
	CPUPerRequestUs map[string]float64 `json:"cpu_per_request_us"`
	RSSMB           map[string]float64 `json:"rss_mb"`
	CacheHitRatio   *float64           `json:"cache_hit_ratio,omitempty"`
	// EventsPerSec is events delivered to and applied by cartsvc per
	// second (storm and backlog).
	EventsPerSec *float64 `json:"events_per_sec,omitempty"`
	// AppliedPerAck is events delivered during the storm ÷ UpdateProduct
	// acknowledgements.
	AppliedPerAck       *float64 `json:"applied_per_ack,omitempty"`
	AppliedMetricPerSec *float64 `json:"applied_metric_per_sec,omitempty"`
	LagP50Ms            *float64 `json:"lag_p50_ms,omitempty"`
	LagP99Ms            *float64 `json:"lag_p99_ms,omitempty"`
	LagSamples          int      `json:"lag_samples,omitempty"`
	Backlog             int      `json:"backlog_events,omitempty"`
	SettleSeconds       float64  `json:"settle_seconds,omitempty"`
	Note                string   `json:"note,omitempty"`
}

func (r *RepResult) addNote(format string, args ...any) {
	if r.Note != "" {
		r.Note += "; "
	}
	r.Note += fmt.Sprintf(format, args...)
}

// line is the result in one line, for progress output.
func (r RepResult) line() string {
	s := fmt.Sprintf("%8.1f/s p50 %7.2f ms p99 %7.2f ms", r.RPS, r.P50Ms, r.P99Ms)
	if r.Failed > 0 {
		s += fmt.Sprintf(" errors %v", r.Errors)
	}
	if r.EventsPerSec != nil {
		s += fmt.Sprintf(" events %.1f/s", *r.EventsPerSec)
	}
	if r.AppliedPerAck != nil {
		s += fmt.Sprintf(" applied/ack %.2f", *r.AppliedPerAck)
	}
	if r.LagP50Ms != nil {
		s += fmt.Sprintf(" lag p50 %.0f ms p99 %.0f ms", *r.LagP50Ms, *r.LagP99Ms)
	}
	if r.Note != "" {
		s += " (" + r.Note + ")"
	}
	return s
}

// Spread is a figure's median and range over the repetitions.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func spreadOf(vals []float64) Spread {
	vals = slices.DeleteFunc(slices.Clone(vals), func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) })
	if len(vals) == 0 {
		return Spread{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	slices.Sort(vals)
	med := vals[len(vals)/2]
	if len(vals)%2 == 0 {
		med = (vals[len(vals)/2-1] + vals[len(vals)/2]) / 2
	}
	return Spread{Median: med, Min: vals[0], Max: vals[len(vals)-1], N: len(vals)}
}

func (s Spread) String() string {
	if s.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%s [%s–%s]", num(s.Median), num(s.Min), num(s.Max))
}

// num prints a ratio or figure with 2 significant decimals.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// MarshalJSON writes NaN as null.
func (s Spread) MarshalJSON() ([]byte, error) {
	if s.N == 0 {
		return []byte("null"), nil
	}
	type plain Spread
	return json.Marshal(plain(s))
}

// ratioDef is one row of issue 10's table: num ÷ den per repetition.
type ratioDef struct {
	name       string
	num, den   func(reps map[string]RepResult) float64
	target     float64
	atMost     bool
	targetText string
}

func rpsOf(name string) func(map[string]RepResult) float64 {
	return func(r map[string]RepResult) float64 {
		return nanIfMissing(r, name, func(x RepResult) float64 { return x.RPS })
	}
}

func p99Of(name string) func(map[string]RepResult) float64 {
	return func(r map[string]RepResult) float64 {
		return nanIfMissing(r, name, func(x RepResult) float64 { return x.P99Ms })
	}
}

func eventsOf(name string) func(map[string]RepResult) float64 {
	return func(r map[string]RepResult) float64 {
		return nanIfMissing(r, name, func(x RepResult) float64 { return deref(x.EventsPerSec) })
	}
}

func nanIfMissing(r map[string]RepResult, name string, f func(RepResult) float64) float64 {
	x, ok := r[name]
	if !ok {
		return math.NaN()
	}
	return f(x)
}

func deref(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func one(map[string]RepResult) float64 { return 1 }

// ratios are issue 10's table, in its order.
var ratios = []ratioDef{
	{"GetProduct (proto) ÷ plain net/http JSON handler, rps", rpsOf(ScenarioGetProduct), rpsOf(ScenarioPlain), 0.4, false, "≥ 0.4"},
	{"GetCart, 20 lines, warm cache ÷ plain, rps", rpsOf(ScenarioGetCartWarm), rpsOf(ScenarioPlain), 0.25, false, "≥ 0.25"},
	{"GetCart warm ÷ GetCart with the cache off, rps", rpsOf(ScenarioGetCartWarm), rpsOf(ScenarioGetCartCold), 2, false, "≥ 2"},
	{"GetCart p99 ÷ plain p99", p99Of(ScenarioGetCartWarm), p99Of(ScenarioPlain), 3, true, "≤ 3"},
	{"ListProducts with a search query, page 20 ÷ plain, rps", rpsOf(ScenarioListProducts), rpsOf(ScenarioPlain), 0.15, false, "≥ 0.15"},
	{"AddCartItem ÷ raw single-row INSERT (pgx, 8 workers), rps", rpsOf(ScenarioAddCartItem), rpsOf(ScenarioPGInsert), 0.25, false, "≥ 0.25"},
	{"AddCartItem p99 ÷ plain p99", p99Of(ScenarioAddCartItem), p99Of(ScenarioPlain), 5, true, "≤ 5"},
	{"UpdateProduct (with its outbox row) ÷ raw INSERT, rps", rpsOf(ScenarioUpdateProduct), rpsOf(ScenarioPGInsert), 0.25, false, "≥ 0.25"},
	{"events applied in carts per s during a price-change storm ÷ raw INSERT", eventsOf(ScenarioPriceStorm), rpsOf(ScenarioPGInsert), 0.25, false, "≥ 0.25"},
	{"storm: events applied ÷ UpdateProduct acks", func(r map[string]RepResult) float64 {
		return nanIfMissing(r, ScenarioPriceStorm, func(x RepResult) float64 { return deref(x.AppliedPerAck) })
	}, one, 0.95, false, "≥ 0.95"},
	{"outbox backlog drained and applied per s ÷ raw INSERT", eventsOf(ScenarioBacklog), rpsOf(ScenarioPGInsert), 1, false, "≥ 1"},
	{"GetProduct, Connect JSON ÷ plain, rps (no target)", rpsOf(ScenarioGetProductJSON), rpsOf(ScenarioPlain), 0, false, ""},
	{"raw SELECT by primary key ÷ plain, rps (no target)", rpsOf(ScenarioPGSelect), rpsOf(ScenarioPlain), 0, false, ""},
}

// Ratio is one computed row of the table.
type Ratio struct {
	Name   string    `json:"name"`
	Values []float64 `json:"values"`
	Spread Spread    `json:"spread"`
	Target string    `json:"target,omitempty"`
	// Met says whether the median meets the target (nil: no target or no data).
	Met *bool `json:"met,omitempty"`
}

// ScenarioReport is one scenario over all repetitions.
type ScenarioReport struct {
	Name  string      `json:"name"`
	Title string      `json:"title"`
	Reps  []RepResult `json:"reps"`
}

// Machine is where the run happened.
type Machine struct {
	CPUModel  string `json:"cpu_model"`
	Cores     int    `json:"cores"`
	GoVersion string `json:"go_version"`
	Postgres  string `json:"postgres_version"`
	OS        string `json:"os"`
}

// Report is a benchmark run's results.
type Report struct {
	Command string `json:"command"`
	// Commit is the source's git commit ("+dirty" with uncommitted changes).
	Commit    string           `json:"commit,omitempty"`
	Started   time.Time        `json:"started"`
	Finished  time.Time        `json:"finished"`
	Machine   Machine          `json:"machine"`
	Config    map[string]any   `json:"config"`
	Setup     []string         `json:"setup"`
	Scenarios []ScenarioReport `json:"scenarios"`
	Ratios    []Ratio          `json:"ratios"`
}

// buildReport fills the scenarios and ratios from results.
func (rep *Report) build(results map[string][]RepResult) {
	byRep := map[int]map[string]RepResult{}
	for _, name := range Scenarios() {
		rs, ok := results[name]
		if !ok {
			continue
		}
		rep.Scenarios = append(rep.Scenarios, ScenarioReport{Name: name, Title: scenarioTitles[name], Reps: rs})
		for _, r := range rs {
			if byRep[r.Rep] == nil {
				byRep[r.Rep] = map[string]RepResult{}
			}
			byRep[r.Rep][name] = r
		}
	}
	reps := make([]int, 0, len(byRep))
	for k := range byRep {
		reps = append(reps, k)
	}
	slices.Sort(reps)
	for _, def := range ratios {
		row := Ratio{Name: def.name, Target: def.targetText}
		for _, k := range reps {
			n, d := def.num(byRep[k]), def.den(byRep[k])
			v := n / d
			if d == 0 {
				v = math.NaN()
			}
			row.Values = append(row.Values, v)
		}
		row.Spread = spreadOf(row.Values)
		for i, v := range row.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				row.Values[i] = -1 // JSON has no NaN: -1 marks a missing value
			}
		}
		if def.targetText != "" && row.Spread.N > 0 {
			met := row.Spread.Median >= def.target
			if def.atMost {
				met = row.Spread.Median <= def.target
			}
			row.Met = &met
		}
		rep.Ratios = append(rep.Ratios, row)
	}
}

// median of a figure over a scenario's repetitions.
func medianOf(rs []RepResult, f func(RepResult) float64) Spread {
	vals := make([]float64, len(rs))
	for i, r := range rs {
		vals[i] = f(r)
	}
	return spreadOf(vals)
}

// Write writes prefix.json and prefix.md.
func (rep *Report) Write(prefix string) error {
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(prefix+".json", append(js, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	rep.Markdown(&md)
	return os.WriteFile(prefix+".md", []byte(md.String()), 0o644)
}

// Markdown writes the report as Markdown: the ratio table first.
func (rep *Report) Markdown(w io.Writer) {
	rep.markdownHeader(w)
	fmt.Fprintf(w, "\n## Ratios (median [min–max] over the repetitions; each a ratio to a baseline measured in the same repetition)\n\n")
	fmt.Fprintf(w, "| ratio | measured | target | met |\n|---|---|---|---|\n")
	for _, r := range rep.Ratios {
		met := ""
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "**no**"}[*r.Met]
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.Name, r.Spread, r.Target, met)
	}
	fmt.Fprintf(w, "\n## Scenarios (median [min–max])\n\n")
	fmt.Fprintf(w, "| scenario | rps | p50 ms | p99 ms | errors | CPU µs/request: productsvc · cartsvc · postgres · shopload | RSS MB prod · cart | events/s | lag p50 · p99 ms |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range rep.Scenarios {
		s.markdownRow(w)
	}
	fmt.Fprintf(w, "\nScenarios:\n\n")
	for _, s := range rep.Scenarios {
		fmt.Fprintf(w, "- `%s`: %s\n", s.Name, s.Title)
		for _, r := range s.Reps {
			if r.Note != "" {
				fmt.Fprintf(w, "  - rep %d: %s\n", r.Rep, r.Note)
			}
			if r.CacheHitRatio != nil {
				fmt.Fprintf(w, "  - rep %d: product cache hit ratio %.2f\n", r.Rep, *r.CacheHitRatio)
			}
		}
	}
	fmt.Fprintf(w, "\nCache hit ratio: reported only when cartsvc exports a counter with \"cache\" and hit/miss in its name or labels.\n")
}

// markdownHeader writes the title, the command, commit, machine and
// config, and the setup.
func (rep *Report) markdownHeader(w io.Writer) {
	fmt.Fprintf(w, "# shopload results\n\n")
	fmt.Fprintf(w, "Command: `%s`  \n", rep.Command)
	if rep.Commit != "" {
		fmt.Fprintf(w, "Commit: %s  \n", rep.Commit)
	}
	fmt.Fprintf(w, "Run: %s, %s  \n", rep.Started.UTC().Format(time.RFC3339), rep.Finished.Sub(rep.Started).Round(time.Second))
	m := rep.Machine
	fmt.Fprintf(w, "Machine: %s, %d cores, %s, PostgreSQL %s, %s  \n", m.CPUModel, m.Cores, m.GoVersion, m.Postgres, m.OS)
	cfg, _ := json.Marshal(rep.Config)
	fmt.Fprintf(w, "Config: `%s`\n\n", cfg)
	for _, s := range rep.Setup {
		fmt.Fprintf(w, "- %s\n", s)
	}
}

// markdownRow writes the scenario's row of the scenarios table.
func (s ScenarioReport) markdownRow(w io.Writer) {
	errs := map[string]int{}
	for _, r := range s.Reps {
		for k, v := range r.Errors {
			errs[k] += v
		}
	}
	errText := "0"
	if len(errs) > 0 {
		errText = fmt.Sprint(errs)
	}
	cpu := func(p string) string {
		return medianOf(s.Reps, func(r RepResult) float64 {
			if v, ok := r.CPUPerRequestUs[p]; ok {
				return v
			}
			return math.NaN()
		}).medianText()
	}
	cartCPU := cpu("cartsvc")
	if s.Name == ScenarioGetCartCold {
		cartCPU = cpu("cartsvc-nocache") + " (no-cache replica)"
	}
	rssText := fmt.Sprintf("%s · %s",
		medianOf(s.Reps, func(r RepResult) float64 { return r.RSSMB["productsvc"] }).medianText(),
		medianOf(s.Reps, func(r RepResult) float64 { return r.RSSMB["cartsvc"] }).medianText())
	fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s · %s · %s · %s | %s | %s | %s · %s |\n", s.Name,
		medianOf(s.Reps, func(r RepResult) float64 { return r.RPS }),
		medianOf(s.Reps, func(r RepResult) float64 { return r.P50Ms }),
		medianOf(s.Reps, func(r RepResult) float64 { return r.P99Ms }),
		errText, cpu("productsvc"), cartCPU, cpu("postgres"), cpu("shopload"), rssText,
		medianOf(s.Reps, func(r RepResult) float64 { return deref(r.EventsPerSec) }),
		medianOf(s.Reps, func(r RepResult) float64 { return deref(r.LagP50Ms) }).medianText(),
		medianOf(s.Reps, func(r RepResult) float64 { return deref(r.LagP99Ms) }).medianText())
}

func (s Spread) medianText() string {
	if s.N == 0 {
		return "–"
	}
	return num(s.Median)
}
